"""Streams of image files read lazily from disk (Tiny ImageNet, CORe50).

These data sets are too large to hold as tensors, so their experiences are Avalanche
datasets of ``(path, label)`` pairs whose images are opened, converted to RGB and turned
into ``[0, 1]`` tensors (optionally resized) when a batch is drawn. Everything that can be
checked without reading every image is checked when the stream is built: the layout,
that every listed file exists, and that one image per split opens at the expected size.
Nothing here downloads: Avalanche's loaders are only ever called with the files present
and ``download=False``.
"""

from __future__ import annotations

import contextlib
import io
import os
from abc import ABC, abstractmethod
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from .errors import CorruptDataError, DataNotFoundError
from .streams import Stream, holdout_indices

#: One image: its absolute path and its label.
Item = tuple[str, int]


class FileStream(ABC):
    """How a catalogue entry finds, checks and builds a stream of image files under a data root."""

    #: The scenarios the stream supports.
    scenarios: tuple[str, ...] = ("class",)
    #: The number of experiences its protocol fixes, or ``None`` when it may be chosen.
    experiences: Optional[int] = None

    @property
    @abstractmethod
    def layout(self) -> str:
        """The folders and files the stream expects under the data root."""

    @abstractmethod
    def locate(self, data_root: Optional[Path]) -> Path:
        """The folder that holds the data, after a quick check of its layout.

        Raises:
            DataNotFoundError: a folder or file of the layout is missing.
        """

    @abstractmethod
    def build(self, name: str, scenario: str, n_experiences: int, seed: int, data_root: Optional[Path],
              validation: bool) -> Stream:
        """Check the files and build the stream (see :func:`~avalanche_ext.benchmarks.build_benchmark`)."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what Avalanche's dataset classes print, so that ``--json`` output stays clean."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def image_transform(size: Optional[int]):
    """PIL image -> ``(3, H, W)`` float tensor in ``[0, 1]``, resized to ``size x size`` if given."""
    from torchvision import transforms

    steps = [transforms.Resize((size, size))] if size else []
    return transforms.Compose([*steps, transforms.ToTensor()])


def require(path: Path, what: str, hint: str) -> Path:
    """``path`` if it exists, else a :class:`DataNotFoundError` naming it."""
    if not path.exists():
        raise DataNotFoundError(f"{what}: missing {path}. {hint}")
    return path


def check_files_exist(items: Sequence[Item], what: str) -> None:
    """Every listed image exists (one directory listing per folder, not one call per file).

    Raises:
        DataNotFoundError: naming how many are missing and the first few.
    """
    by_folder: dict[str, list[str]] = defaultdict(list)
    for path, _ in items:
        folder, file = os.path.split(path)
        by_folder[folder].append(file)
    missing = []
    for folder, files in by_folder.items():
        try:
            present = set(os.listdir(folder))
        except OSError:
            present = set()
        missing += [os.path.join(folder, f) for f in files if f not in present]
    if missing:
        raise DataNotFoundError(f"{what}: {len(missing)} of {len(items)} listed images are missing, e.g. "
                                f"{', '.join(missing[:3])}")


def check_image(path: str, size: int, what: str) -> None:
    """The image at ``path`` decodes and is ``size x size`` pixels.

    Raises:
        CorruptDataError: it does not decode, or has another size (the wrong folder).
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            found = im.size
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file; all mean the same here
        raise CorruptDataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if found != (size, size):
        raise CorruptDataError(f"{path}: {what} images are {size} x {size} pixels, this one is "
                               f"{found[0]} x {found[1]}")


def holdout(items: Sequence[Item], what: str) -> tuple[list[Item], list[Item]]:
    """A stratified ``(kept, held_out)`` split of ``items`` (the validation protocol of the other streams).

    Raises:
        ValueError: too few images per class to hold out a stratified part.
    """
    labels = np.array([label for _, label in items])
    try:
        kept, held = holdout_indices(labels)
    except ValueError as e:
        raise ValueError(f"{what}: {len(items)} images of {len(set(labels.tolist()))} classes are too few "
                         f"for a stratified validation split ({e})") from e
    return [items[i] for i in kept], [items[i] for i in held]


def paths_benchmark(train: Sequence[Sequence[Item]], test: Sequence[Sequence[Item]], task_labels: Sequence[int],
                    size: Optional[int], complete_test_set_only: bool = False):
    """An Avalanche benchmark with one experience per list of ``(path, label)`` items."""
    from avalanche.benchmarks.scenarios.deprecated.generic_benchmark_creation import (
        create_generic_benchmark_from_paths,
    )

    transform = image_transform(size)
    return create_generic_benchmark_from_paths(
        [list(t) for t in train], [list(t) for t in test], task_labels=list(task_labels),
        complete_test_set_only=complete_test_set_only, train_transform=transform, eval_transform=transform,
    )


__all__ = ["FileStream", "Item", "check_files_exist", "check_image", "holdout", "image_transform",
           "paths_benchmark", "quiet", "require"]
