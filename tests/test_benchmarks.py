import pytest
import torch

from avalanche_ext.benchmarks import BENCHMARKS, DataNotFoundError, UnknownNameError, build_benchmark
from avalanche_ext.benchmarks.sources import DEBIAN_FMNIST


def _labels(exp):
    return torch.as_tensor(list(exp.dataset.targets))


def _tasks(exp):
    return set(int(t) for t in exp.dataset.targets_task_labels)


def test_split_digits_class_scenario_partitions_classes():
    s = build_benchmark("split_digits", "class", seed=3)
    assert s.n_experiences == 5 and len(s.train_stream) == 5 and s.n_outputs == 10
    seen = []
    for exp, classes in zip(s.train_stream, s.classes_per_exp):
        assert set(_labels(exp).tolist()) == set(classes)
        assert _tasks(exp) == {0}
        seen += classes
    assert sorted(seen) == list(range(10))
    x, *_ = s.train_stream[0].dataset[0]
    assert tuple(x.shape) == (1, 8, 8) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_task_scenario_has_task_labels_and_local_classes():
    s = build_benchmark("split_digits", "task", seed=0)
    assert s.multihead and s.n_outputs == 2
    for t, (tr, te) in enumerate(zip(s.train_stream, s.test_stream)):
        assert _tasks(tr) == {t} and _tasks(te) == {t}
        assert set(_labels(tr).tolist()) == {0, 1}


def test_domain_scenario_has_no_task_labels():
    s = build_benchmark("split_digits", "domain", seed=0)
    assert not s.multihead and s.n_outputs == 2
    assert all(_tasks(e) == {0} and set(_labels(e).tolist()) == {0, 1} for e in s.train_stream)


def test_permuted_streams_permute_pixels_consistently():
    s = build_benchmark("permuted_digits", "domain", seed=0, n_experiences=3)
    assert s.n_outputs == 10 and len(s.train_stream) == 3
    x0 = s.train_stream[0].dataset[0][0].flatten()
    x1 = s.train_stream[1].dataset[0][0].flatten()
    assert not torch.equal(x0, x1)
    assert torch.equal(torch.sort(x0).values, torch.sort(x1).values)  # same pixels, other order
    with pytest.raises(ValueError, match="supports scenarios domain, task"):
        build_benchmark("permuted_digits", "class")


def test_same_seed_same_stream_other_seed_other_order():
    a, b = build_benchmark("split_digits", seed=1), build_benchmark("split_digits", seed=1)
    c = build_benchmark("split_digits", seed=2)
    assert a.classes_per_exp == b.classes_per_exp != c.classes_per_exp
    assert torch.equal(a.train_stream[0].dataset[0][0], b.train_stream[0].dataset[0][0])


def test_n_experiences_and_validation_split():
    s = build_benchmark("split_digits", n_experiences=2, seed=0)
    assert [len(g) for g in s.classes_per_exp] == [5, 5]
    v = build_benchmark("split_digits", seed=0, validation=True)
    n_test = sum(len(e.dataset) for e in s.test_stream)
    n_val = sum(len(e.dataset) for e in v.test_stream)
    assert v.validation and n_val != n_test and n_val > 0
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_benchmark("split_digits", "task", n_experiences=10)


def test_mnist5k_is_real_subset_with_held_out_test():
    s = build_benchmark("split_mnist5k", seed=0)
    n_train = sum(len(e.dataset) for e in s.train_stream)
    n_test = sum(len(e.dataset) for e in s.test_stream)
    assert (n_train, n_test) == (4000, 1000)
    assert s.input_shape == (1, 28, 28)


def test_unknown_names_and_missing_data_are_clear(tmp_path):
    with pytest.raises(UnknownNameError, match="Did you mean split_digits"):
        build_benchmark("split_digit")
    with pytest.raises(ValueError, match="supports scenarios"):
        build_benchmark("split_digits", "rotated")
    with pytest.raises(DataNotFoundError, match="MNIST/raw"):
        build_benchmark("split_mnist", data_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        build_benchmark("split_cifar10", data_root=tmp_path)
    ok, why = BENCHMARKS["split_cifar100"].availability(tmp_path)
    assert not ok and "cifar-100-python" in why


def test_raw_idx_root_loads_offline(tmp_path):
    """A data root in torchvision's raw layout is read without any download."""
    import gzip
    import struct

    import numpy as np

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for split, n in (("train", 40), ("t10k", 20)):
        images = rng.randint(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        with gzip.open(raw / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    s = build_benchmark("split_mnist", "class", data_root=tmp_path, seed=0)
    assert sum(len(e.dataset) for e in s.train_stream) == 40
    x = s.train_stream[0].dataset[0][0]
    assert x.shape == (1, 28, 28) and float(x.max()) <= 1.0


@pytest.mark.skipif(not DEBIAN_FMNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fmnist_from_debian_package():
    s = build_benchmark("split_fmnist", seed=0)
    assert sum(len(e.dataset) for e in s.train_stream) == 60000
    assert sum(len(e.dataset) for e in s.test_stream) == 10000
