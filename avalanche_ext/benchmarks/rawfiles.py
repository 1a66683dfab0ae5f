"""Checked readers of raw data files: IDX (MNIST, Fashion-MNIST) and CIFAR's python batches.

A file that is present but unreadable, truncated or of the wrong kind raises one
:class:`~avalanche_ext.benchmarks.errors.CorruptDataError` that names the file and says
what is wrong, instead of a numpy or pickle error that names neither.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np

from .errors import CorruptDataError

#: Magic numbers of IDX files of unsigned bytes: 0x0000 08 <ndim>.
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, decompressed when it ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise CorruptDataError(f"{path}: not a complete gzip file ({type(e).__name__}: {e}); "
                               "download or unpack it again") from e


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read an IDX file of unsigned bytes, checking its magic number and its size.

    Args:
        path: the file (raw or ``.gz``).
        kind: ``"images"`` (magic ``0x00000803``, three dimensions) or ``"labels"``
            (magic ``0x00000801``, one dimension).

    Returns:
        A ``uint8`` array of the dimensions the header gives.

    Raises:
        CorruptDataError: not gzip-readable, wrong magic number, or a data part shorter or
            longer than the header's dimensions say.
    """
    expected = IDX_MAGIC[kind]
    data = read_bytes(path)
    if len(data) < 4:
        raise CorruptDataError(f"{path}: {len(data)} bytes, too short for an IDX {kind} file")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        raise CorruptDataError(f"{path}: not an IDX {kind} file (magic number 0x{magic:08x}, "
                               f"expected 0x{expected:08x})")
    ndim = data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise CorruptDataError(f"{path}: truncated inside its header ({len(data)} of {start} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    need = int(np.prod(dims, dtype=np.int64))
    have = len(data) - start
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise CorruptDataError(f"{path}: {what}: the header gives {' x '.join(map(str, dims))} = {need} bytes "
                               f"of data, the file holds {have}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of CIFAR's python version: images ``(N, 3, 32, 32)`` uint8 and labels.

    Args:
        path: a batch file (``data_batch_1``, ``test``, ...).
        label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).

    Raises:
        CorruptDataError: the file does not unpickle, or is not a dict holding ``data``
            (``N x 3072`` bytes) and ``N`` labels under ``label_key``.
    """
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
    except Exception as e:  # noqa: BLE001 - garbage can fail to unpickle in many ways; all mean the same here
        raise CorruptDataError(f"{path}: not a readable CIFAR batch ({type(e).__name__}: {e}); "
                               "unpack the python-version archive again") from e
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        keys = sorted(map(str, batch)) if isinstance(batch, dict) else type(batch).__name__
        raise CorruptDataError(f"{path}: not a CIFAR batch: expected a dict with 'data' and {label_key!r}, got {keys}")
    images = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key])
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or len(labels) != len(images):
        raise CorruptDataError(f"{path}: expected 'data' of N x 3072 bytes and N labels, got data of shape "
                               f"{images.shape} and {len(labels)} labels")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


__all__ = ["IDX_MAGIC", "read_bytes", "read_cifar_batch", "read_idx"]
