"""ExStream: a replay memory that merges its two nearest points instead of dropping one.

ExStream (Hayes, Cahill & Kanan, ICRA 2019) keeps one small buffer per class. While a
class buffer has room, a new sample is stored as it is (count 1). When it is full, the two
nearest stored points of that class (squared L2 distance in the stored space) are replaced
by their count-weighted mean, and the new sample takes the freed slot:

$$
(x_i, c_i), (x_j, c_j) \\;\\to\\; \\Big(\\frac{c_i x_i + c_j x_j}{c_i + c_j},\\; c_i + c_j\\Big),
\\qquad (i, j) = \\arg\\min_{a \\ne b} \\lVert x_a - x_b \\rVert_2^2 .
$$

Each stored point is thus the mean of a cluster of the stream, and the counts say how many
samples it stands for (they always sum to the samples seen of the class). The buffer holds
raw inputs or, when given a feature extractor, latent vectors.

The nearest pair of a class is found by :class:`~avalanche_ext.storage.cluster_store.ClusterStore`,
which also offers Ward's linkage (``linkage="ward"``), an option not in the paper.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from avalanche.training.storage_policy import ExemplarsBuffer
from torch import Tensor

from .cluster_store import ClusterStore, check_linkage, check_size

__all__ = ["ExStreamBuffer"]

Key = tuple[int, int]  # (task label, class label)
FeatureExtractor = Union[torch.nn.Module, Callable[[Tensor], Tensor]]


class ExStreamBuffer(ExemplarsBuffer):
    """Per-class replay memory that merges the nearest pair (ExStream).

    Idea: keep at most ``per_class`` vectors per class and at most ``max_size`` in all.
    A new sample of class $y$ is stored as it is while there is room. If class $y$ is
    full, its two nearest points are merged into their count-weighted mean first; if the
    whole buffer is full, the class holding the most points (ties: the one with the
    nearest pair) merges its nearest pair. Each point carries the number of stream samples
    it stands for, so the counts of a class sum to the samples of that class seen so far.

    Merge rule: $(x_i, c_i), (x_j, c_j) \\to ((c_i x_i + c_j x_j)/(c_i + c_j), c_i + c_j)$
    with $(i, j) = \\arg\\min_{a \\ne b} \\lVert x_a - x_b \\rVert_2^2$ over the class.
    With ``per_class=1`` a class keeps the running mean of its samples.

    Paper: T. L. Hayes, N. D. Cahill, C. Kanan, "Memory Efficient Experience Replay for
    Streaming Learning", ICRA 2019, https://arxiv.org/abs/1809.05922

    Scenarios: class-, task- and domain-incremental; classes are kept apart by
    ``(task label, class label)``. Made for the streaming protocol (each sample seen
    once), and works after whole experiences too.

    Spaces: without ``feature_extractor`` the buffer stores raw inputs and
    :attr:`buffer` is a dataset of inputs, so it plugs into Avalanche's
    ``ReplayPlugin(storage_policy=...)``. With a (frozen) ``feature_extractor`` it stores
    latent vectors; replay them into the model's head with
    :class:`avalanche_ext.plugins.ExStreamPlugin`.

    Args:
        max_size: total number of stored vectors (``ReplayPlugin``'s ``mem_size``).
        per_class: at most this many vectors per class; ``None`` shares ``max_size``
            among the classes (a full buffer merges in its largest class).
        feature_extractor: module or function mapping an input batch to feature vectors;
            ``None`` stores the inputs themselves.
        batch_size: mini-batch size used to read an experience's data.
        linkage: which pair is "nearest": ``"centroid"`` (the paper's, squared L2 distance)
            or ``"ward"`` (the pair whose merge adds least to the within-cluster sum of
            squares, $\\frac{c_a c_b}{c_a + c_b}\\lVert x_a - x_b\\rVert^2$), which keeps
            clusters of similar weight and measured better from 5 points per class up.

    Raises:
        ValueError: ``max_size`` or ``per_class`` is not a positive integer,
            ``per_class > max_size``, or an unknown ``linkage``.

    Example:
        >>> from avalanche.training import Naive
        >>> from avalanche.training.plugins import ReplayPlugin
        >>> buffer = ExStreamBuffer(max_size=200, per_class=20)
        >>> replay = ReplayPlugin(mem_size=200, storage_policy=buffer)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=ce, plugins=[replay])
    """

    def __init__(
        self,
        max_size: int,
        *,
        per_class: Optional[int] = None,
        feature_extractor: Optional[FeatureExtractor] = None,
        batch_size: int = 256,
        linkage: str = "centroid",
    ):
        self.linkage = check_linkage(linkage)
        max_size = check_size("max_size", max_size)
        if per_class is not None:
            per_class = check_size("per_class", per_class)
            if per_class > max_size:
                raise ValueError(f"per_class ({per_class}) cannot exceed max_size ({max_size})")
        self.batch_size = check_size("batch_size", batch_size)
        super().__init__(max_size)
        self.per_class = per_class
        self.feature_extractor = feature_extractor
        self.groups: dict[Key, ClusterStore] = {}
        self.seen: dict[Key, int] = {}
        self.item_shape: Optional[tuple[int, ...]] = None
        self._dataset = None
        self.version = 0
        """Incremented on every change of the stored vectors (for caches)."""

    # ---------------------------------------------------------------- queries
    @property
    def latent(self) -> bool:
        """True when the buffer stores feature vectors rather than inputs."""
        return self.feature_extractor is not None

    def __len__(self) -> int:
        return sum(g.n for g in self.groups.values())

    def counts(self) -> dict[Key, int]:
        """Samples represented per ``(task, class)`` (equals :meth:`seen` counts)."""
        return {k: int(g.weights().sum()) for k, g in self.groups.items()}

    def sizes(self) -> dict[Key, int]:
        """Stored vectors per ``(task, class)``."""
        return {k: g.n for k, g in self.groups.items()}

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Everything stored: ``(x, y, task_labels, counts)``, ``x`` in its stored shape."""
        keys = list(self.groups)
        if not keys:
            shape = self.item_shape or (0,)
            return torch.zeros((0, *shape)), torch.zeros(0, dtype=torch.long), \
                torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        xs = np.concatenate([self.groups[k].points() for k in keys])
        cs = np.concatenate([self.groups[k].weights() for k in keys])
        ys = np.concatenate([np.full(self.groups[k].n, k[1]) for k in keys])
        ts = np.concatenate([np.full(self.groups[k].n, k[0]) for k in keys])
        x = torch.from_numpy(xs.copy()).reshape(len(xs), *self.item_shape)
        return x, torch.from_numpy(ys).long(), torch.from_numpy(ts).long(), torch.from_numpy(cs.copy()).long()

    @property
    def buffer(self):
        """The stored vectors as an Avalanche classification dataset ``(x, y, task)``."""
        if self._dataset is None:
            from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

            x, y, t, _ = self.tensors()
            if len(y) == 0:
                from avalanche.benchmarks.utils.utils import concat_datasets

                self._dataset = concat_datasets([])
            else:
                self._dataset = _make_taskaware_tensor_classification_dataset(x, y, targets=y, task_labels=t)
        return self._dataset

    @buffer.setter
    def buffer(self, value) -> None:  # ExemplarsBuffer.__init__ assigns an empty dataset
        self._dataset = None

    # ---------------------------------------------------------------- updates
    def _touch(self) -> None:
        self._dataset = None
        self.version += 1

    def embed(self, x: Tensor) -> Tensor:
        """Map an input batch to the stored space: flattened input or features."""
        if self.feature_extractor is None:
            return x.detach().reshape(len(x), -1)
        fe = self.feature_extractor
        was_training = isinstance(fe, torch.nn.Module) and fe.training
        if isinstance(fe, torch.nn.Module):
            fe.eval()
            params = next(fe.parameters(), None)
            if params is not None:
                x = x.to(params.device)
        try:
            with torch.no_grad():
                z = fe(x)
        finally:
            if was_training:
                fe.train()
        return z.detach().reshape(len(z), -1)

    def add(self, x: Tensor, y: Tensor, task_labels: Optional[Tensor] = None) -> None:
        """Insert a batch of samples, one at a time in order.

        Args:
            x: inputs ``(B, ...)`` (passed through ``feature_extractor`` if set).
            y: class labels ``(B,)``.
            task_labels: task labels ``(B,)``; ``None`` means task 0.
        """
        if len(x) == 0:
            return
        z = self.embed(x)
        if self.item_shape is None:
            self.item_shape = tuple(z.shape[1:]) if self.latent else tuple(x.shape[1:])
        vectors = z.to("cpu", torch.float32).numpy()
        labels = torch.as_tensor(y).reshape(-1).tolist()
        tasks = [0] * len(labels) if task_labels is None else torch.as_tensor(task_labels).reshape(-1).tolist()
        dims = {g.dim for g in self.groups.values()}
        if dims and dims != {vectors.shape[1]}:
            raise ValueError(f"sample dimension {vectors.shape[1]} differs from the stored one {dims.pop()}")
        for v, c, t in zip(vectors, labels, tasks):
            self._insert((int(t), int(c)), v)
        self._touch()

    def _insert(self, key: Key, v: np.ndarray) -> None:
        group = self.groups.get(key)
        if group is None:
            if len(self) >= self.max_size and not self._make_room():
                raise RuntimeError(
                    f"ExStreamBuffer(max_size={self.max_size}) holds one point for each of "
                    f"{len(self.groups)} classes and cannot store a new class {key}: raise max_size"
                )
            group = ClusterStore(len(v), self.per_class or self.max_size, self.linkage)
            self.groups[key] = group
            self.seen[key] = 0
        self.seen[key] += 1
        if group.n >= group.max_points:  # the class is full: merge inside it
            if group.n < 2:
                group.absorb(v)
            else:
                group.replace_nearest(v)
            return
        if len(self) >= self.max_size and not self._make_room():
            group.absorb(v)  # every class holds one point, this one included
            return
        group.append(v)

    def _make_room(self) -> bool:
        """Merge the nearest pair of the largest class; False if no class has two points."""
        best, best_key = None, None
        for key, g in self.groups.items():
            if g.n < 2:
                continue
            rank = (-g.n, g.nearest_pair()[2])
            if best is None or rank < best:
                best, best_key = rank, key
        if best_key is None:
            return False
        self.groups[best_key].merge_nearest()
        return True

    def post_adapt(self, agent_state: Any, exp: Any) -> None:
        """Insert every sample of ``exp`` (in dataset order, without augmentation)."""
        if self.latent:
            _refuse_plain_replay(agent_state, self)
        data = exp.dataset
        data = data.eval() if hasattr(data, "eval") else data
        loader = torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=False)
        for batch in loader:
            x, y = batch[0], batch[1]
            t = batch[2] if len(batch) > 2 else None
            self.add(x, y, t)

    def update(self, strategy: Any, **kwargs: Any) -> None:
        """What Avalanche's ``ReplayPlugin`` calls after each experience: :meth:`post_adapt`."""
        self.post_adapt(strategy, strategy.experience)

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change ``max_size``; shrinking merges nearest pairs (largest class first)."""
        new_size = check_size("new_size", new_size)
        if self.per_class is not None and self.per_class > new_size:
            raise ValueError(f"new_size ({new_size}) is below per_class ({self.per_class})")
        self.max_size = new_size
        while len(self) > self.max_size:
            if not self._make_room():
                raise ValueError(f"cannot shrink to {new_size}: every class already holds one point")
        for g in self.groups.values():
            g.max_points = self.per_class or self.max_size
        self._touch()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (not the feature extractor)."""
        return {
            "max_size": self.max_size,
            "per_class": self.per_class,
            "linkage": self.linkage,
            "item_shape": self.item_shape,
            "groups": [(list(k), g.state_dict()) for k, g in self.groups.items()],
            "seen": [(list(k), n) for k, n in self.seen.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the feature extractor is the one given at construction)."""
        self.max_size = check_size("max_size", state["max_size"])
        self.per_class = state["per_class"]
        self.linkage = check_linkage(state.get("linkage", "centroid"))
        self.item_shape = None if state["item_shape"] is None else tuple(state["item_shape"])
        self.groups = {tuple(k): ClusterStore.from_state(g) for k, g in state["groups"]}
        self.seen = {tuple(k): int(n) for k, n in state["seen"]}
        self._touch()


def _refuse_plain_replay(agent: Any, buffer: ExStreamBuffer) -> None:
    """A latent buffer under Avalanche's ReplayPlugin would feed features to the input layer."""
    from avalanche.training.plugins import ReplayPlugin

    for p in getattr(agent, "plugins", ()) or ():
        if isinstance(p, ReplayPlugin) and p.storage_policy is buffer:
            raise ValueError(
                "this ExStreamBuffer stores latent features (feature_extractor is set); "
                "ReplayPlugin would feed them to the model's input. Use "
                "avalanche_ext.plugins.ExStreamPlugin(buffer) instead, or drop feature_extractor."
            )

