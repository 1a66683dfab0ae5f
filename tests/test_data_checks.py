"""Data on disk is checked when a benchmark is built: the named root is the one used, and a
corrupt or truncated file gives one error that names it."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from avalanche_ext.benchmarks import BENCHMARKS, CorruptDataError, DataNotFoundError, build_benchmark
from avalanche_ext.benchmarks.rawfiles import read_idx

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(kind: str, n: int, magic=None) -> bytes:
    rng = np.random.RandomState(0)
    if kind == "images":
        return struct.pack(">IIII", magic or 0x803, n, 28, 28) + rng.randint(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()
    return struct.pack(">II", magic or 0x801, n) + (np.arange(n, dtype=np.uint8) % 10).tobytes()


def write_idx_set(raw, n_train=40, n_test=20, gz=False):
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, stem in (("images", f"{split}-images-idx3-ubyte"), ("labels", f"{split}-labels-idx1-ubyte")):
            data = idx_bytes(kind, n)
            if gz:
                with gzip.open(raw / f"{stem}.gz", "wb") as f:
                    f.write(data)
            else:
                (raw / stem).write_bytes(data)
    return raw


def write_cifar10(folder, n=10):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.randint(0, 256, (n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    return folder


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg
    return msg


# --- the named root is the root used ------------------------------------------------------------

def test_named_missing_root_is_refused_without_falling_back(tmp_path):
    missing = tmp_path / "nonexistent"
    with pytest.raises(DataNotFoundError) as e:
        build_benchmark("split_fmnist", data_root=missing)
    msg = one_line(e.value)
    assert f"(looked in {missing}/FashionMNIST/raw)" in msg  # that folder only: no system copy
    ok, why = BENCHMARKS["permuted_fmnist"].availability(missing)
    assert not ok and "nonexistent/FashionMNIST/raw" in why


def test_named_root_with_fmnist_files_is_the_one_read(tmp_path):
    write_idx_set(tmp_path / "FashionMNIST" / "raw", n_train=30, n_test=10)
    s = build_benchmark("split_fmnist", data_root=tmp_path, seed=0)
    assert sum(len(e.dataset) for e in s.train_stream) == 30  # not the 60,000 of a system copy
    assert sum(len(e.dataset) for e in s.test_stream) == 10


# --- IDX files ---------------------------------------------------------------------------------

def test_idx_with_a_bad_magic_number_names_the_file(tmp_path):
    raw = write_idx_set(tmp_path / "MNIST" / "raw")
    bad = raw / "train-images-idx3-ubyte"
    bad.write_bytes(idx_bytes("images", 40, magic=0x801))
    with pytest.raises(CorruptDataError) as e:
        build_benchmark("split_mnist", data_root=tmp_path)
    assert one_line(e.value) == (f"{bad}: not an IDX images file (magic number 0x00000801, expected 0x00000803)")
    assert isinstance(e.value, DataNotFoundError) and isinstance(e.value, ValueError)


def test_truncated_idx_names_the_file_and_the_sizes(tmp_path):
    raw = write_idx_set(tmp_path / "MNIST" / "raw")
    bad = raw / "t10k-images-idx3-ubyte"
    bad.write_bytes(idx_bytes("images", 20)[:3908])
    with pytest.raises(CorruptDataError) as e:
        build_benchmark("split_mnist", data_root=tmp_path)
    assert one_line(e.value) == (f"{bad}: truncated: the header gives 20 x 28 x 28 = 15680 bytes of data, "
                                 "the file holds 3892")


def test_idx_header_with_absurd_dimensions_is_caught_before_reshaping(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", 0x803, 287978165, 28, 28) + bytes(3908))
    with pytest.raises(CorruptDataError, match=r"x-images-idx3-ubyte: truncated: the header gives 287978165 x 28 x 28"):
        read_idx(path, "images")


def test_corrupt_gz_names_the_file(tmp_path):
    raw = write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"this is not gzip data at all")
    with pytest.raises(CorruptDataError) as e:
        build_benchmark("split_mnist", data_root=tmp_path)
    assert one_line(e.value).startswith(f"{bad}: not a complete gzip file (BadGzipFile")


def test_truncated_gz_names_the_file(tmp_path):
    raw = write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    bad = raw / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(CorruptDataError) as e:
        build_benchmark("split_mnist", data_root=tmp_path)
    assert one_line(e.value).startswith(f"{bad}: not a complete gzip file (EOFError")


def test_images_and_labels_that_disagree_are_named(tmp_path):
    raw = write_idx_set(tmp_path / "MNIST" / "raw")
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes("labels", 39))
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte holds 40 images but .*train-labels-idx1-ubyte holds 39"):
        build_benchmark("split_mnist", data_root=tmp_path)


def test_valid_gz_and_raw_files_still_load(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", gz=True)
    s = build_benchmark("split_mnist", data_root=tmp_path, seed=0)
    assert sum(len(e.dataset) for e in s.train_stream) == 40 and s.input_shape == (1, 28, 28)


# --- CIFAR pickles -----------------------------------------------------------------------------

def test_cifar10_from_the_python_archive_layout(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    s = build_benchmark("split_cifar10", data_root=tmp_path, seed=0)
    assert s.input_shape == (3, 32, 32) and s.n_outputs == 10
    assert sum(len(e.dataset) for e in s.train_stream) == 50 and sum(len(e.dataset) for e in s.test_stream) == 10


def test_garbage_cifar_pickle_names_the_file(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    bad = folder / "data_batch_3"
    bad.write_bytes(b"\x00\x01garbage that is no pickle")
    with pytest.raises(CorruptDataError) as e:
        build_benchmark("split_cifar10", data_root=tmp_path)
    assert one_line(e.value).startswith(f"{bad}: not a readable CIFAR batch (")
    ok, why = BENCHMARKS["split_cifar10"].availability(tmp_path)
    assert not ok and str(bad) in why


def test_truncated_cifar_pickle_names_the_file(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    bad = folder / "test_batch"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(CorruptDataError, match=rf"^{bad}: not a readable CIFAR batch"):
        build_benchmark("split_cifar10", data_root=tmp_path)


def test_cifar_pickle_of_the_wrong_shape_names_the_file(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-100-python", n=4)
    (folder / "train").write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "fine_labels": [0, 1, 2, 3]}))
    (folder / "test").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CorruptDataError, match=r"cifar-100-python/test: not a CIFAR batch: expected a dict with 'data' and 'fine_labels', got list"):
        build_benchmark("split_cifar100", data_root=tmp_path)
    (folder / "test").write_bytes(pickle.dumps({"data": np.zeros((4, 1000), np.uint8), "fine_labels": [0, 1, 2, 3]}))
    with pytest.raises(CorruptDataError, match=r"cifar-100-python/test: expected 'data' of N x 3072 bytes"):
        build_benchmark("split_cifar100", data_root=tmp_path)


# --- the command line turns it into exit 2 -------------------------------------------------------

def test_cli_refuses_a_corrupt_file_with_one_line_and_exit_2(tmp_path, capsys, tracking_uri):
    from avalanche_ext.cli import main

    raw = write_idx_set(tmp_path / "MNIST" / "raw")
    bad = raw / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:3908])
    code = main(["run", "naive", "--benchmark", "split_mnist", "--data-root", str(tmp_path), "--threads", "1",
                 "--tracking-uri", tracking_uri, "--no-checkpoint"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"avalanche-ext: error: {bad}: truncated")
