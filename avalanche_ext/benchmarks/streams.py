"""Turn a :class:`~avalanche_ext.benchmarks.sources.Source` into an Avalanche stream.

Two stream families:

* **split**: the classes are shuffled by the seed and dealt into experiences.
  ``class`` keeps the original labels and gives no task label (one shared head);
  ``task`` gives task label *t* to experience *t* and numbers each experience's classes
  from zero (one head per task); ``domain`` numbers classes from zero too but gives no
  task label (one small shared head, as in Hsu et al. 2018).
* **permuted**: every experience holds all classes under its own fixed pixel
  permutation. ``domain`` gives no task label; ``task`` gives task label *t*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .sources import Source

SCENARIOS = ("class", "task", "domain")


@dataclass
class Stream:
    """An Avalanche benchmark plus what a recipe needs to build a model for it."""

    name: str
    scenario: str
    seed: int
    benchmark: object
    input_shape: tuple[int, ...]
    n_outputs: int
    n_experiences: int
    classes_per_exp: list[list[int]] = field(default_factory=list)
    validation: bool = False

    @property
    def multihead(self) -> bool:
        """Task-IL streams carry task labels and are meant for one head per task."""
        return self.scenario == "task"

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def train_stream(self):
        return self.benchmark.train_stream

    @property
    def test_stream(self):
        return self.benchmark.test_stream


def _tensors_benchmark(train: list, test: list, task_labels: list[int]):
    from avalanche.benchmarks import tensors_benchmark

    return tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=task_labels)


def mark_class_incremental(bm: object, groups: list[list[int]], n_classes: int) -> None:
    """Set the attributes of Avalanche's NCScenario that class-incremental strategies (iCaRL) read."""
    bm.n_classes_per_exp = [len(g) for g in groups]
    bm.classes_order = [c for g in groups for c in g]
    bm.n_classes = n_classes


def class_groups(name: str, scenario: str, n_classes: int, n_experiences: int, seed: int) -> list[list[int]]:
    """The classes of each experience: a seeded permutation dealt into ``n_experiences`` groups."""
    if not 1 <= n_experiences <= n_classes:
        raise ValueError(f"{name}: n_experiences must be in [1, {n_classes}], got {n_experiences}")
    order = np.random.RandomState(seed).permutation(n_classes)
    groups = [list(map(int, g)) for g in np.array_split(order, n_experiences)]
    if scenario in ("task", "domain") and min(len(g) for g in groups) < 2:
        raise ValueError(
            f"{name}: the {scenario} scenario needs at least 2 classes per experience; "
            f"use fewer experiences (at most {n_classes // 2}) or scenario 'class'"
        )
    return groups


def split_stream(source: Source, name: str, scenario: str, n_experiences: int, seed: int) -> Stream:
    """Deal the seed-shuffled classes of ``source`` into ``n_experiences`` experiences."""
    n_classes = source.n_classes
    groups = class_groups(name, scenario, n_classes, n_experiences, seed)
    train, test = [], []
    for classes in groups:
        remap = torch.full((n_classes,), -1, dtype=torch.long)
        for i, c in enumerate(classes):
            remap[c] = c if scenario == "class" else i
        for x, y, out in ((source.x_train, source.y_train, train), (source.x_test, source.y_test, test)):
            keep = torch.isin(y, torch.tensor(classes))
            out.append((x[keep], remap[y[keep]]))
    task_labels = list(range(n_experiences)) if scenario == "task" else [0] * n_experiences
    n_outputs = n_classes if scenario == "class" else max(len(g) for g in groups)
    bm = _tensors_benchmark(train, test, task_labels)
    if scenario == "class":
        mark_class_incremental(bm, groups, n_classes)
    return Stream(name, scenario, seed, bm, source.input_shape, n_outputs, n_experiences, groups)


def permuted_stream(source: Source, name: str, scenario: str, n_experiences: int, seed: int) -> Stream:
    """Give every experience all classes under its own seeded pixel permutation."""
    if scenario not in ("domain", "task"):
        raise ValueError(f"{name}: permuted streams support the domain and task scenarios, not {scenario!r}")
    if n_experiences < 1:
        raise ValueError(f"{name}: n_experiences must be >= 1, got {n_experiences}")
    rng = np.random.RandomState(seed)
    n_pixels = int(np.prod(source.input_shape))
    train, test = [], []
    for _ in range(n_experiences):
        perm = torch.as_tensor(rng.permutation(n_pixels))
        for x, y, out in ((source.x_train, source.y_train, train), (source.x_test, source.y_test, test)):
            flat = x.reshape(len(x), -1)[:, perm]
            out.append((flat.reshape(x.shape), y.clone()))
    task_labels = list(range(n_experiences)) if scenario == "task" else [0] * n_experiences
    bm = _tensors_benchmark(train, test, task_labels)
    all_classes = list(range(source.n_classes))
    return Stream(name, scenario, seed, bm, source.input_shape, source.n_classes, n_experiences,
                  [all_classes[:] for _ in range(n_experiences)])


#: Share of the training data a validation split holds out, and the seed of that split.
VALIDATION_FRACTION = 0.15
VALIDATION_SEED = 1


def holdout_indices(labels: np.ndarray, fraction: float = VALIDATION_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, held_out)`` of a stratified split of ``labels`` (fixed seed)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    kept, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=VALIDATION_SEED)
    return kept, held


def carve_validation(source: Source, fraction: float = VALIDATION_FRACTION) -> Source:
    """Replace the test split by a stratified part of the training data (for tuning)."""
    tr, va = holdout_indices(source.y_train.numpy(), fraction)
    tr, va = torch.as_tensor(tr), torch.as_tensor(va)
    return Source(source.name + "-val", source.x_train[tr], source.y_train[tr], source.x_train[va], source.y_train[va])
