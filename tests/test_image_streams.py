"""Split Tiny ImageNet and CORe50 read from tiny fake copies in their exact on-disk layouts.

Each image is a solid colour that encodes its class, so a test can tell that an image
arrives with the right label. The network is cut off for every test of this file.
"""

import io
import os
import re
import socket
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from avalanche_ext.benchmarks import BENCHMARKS, CorruptDataError, DataNotFoundError, build_benchmark
from avalanche_ext.benchmarks.streams import class_groups

TRAIN_SESSIONS, TEST_SESSIONS = [1, 2, 4, 5, 6, 8, 9, 11], [3, 7, 10]
FRAMES = 7  # per object and session: enough for a stratified validation split of one session


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


TRAIN_BLUE, TEST_BLUE = 40, 200


def _encoded(c: int, size: int, fmt: str, blue: int = TRAIN_BLUE) -> bytes:
    """A solid image: red is the class, blue tells training (40) from test (200) images."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (c, 255 - c, blue)).save(buf, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _class_of(x: torch.Tensor) -> int:
    """The class a solid-colour image encodes (JPEG keeps a flat colour within a unit or two)."""
    return int(round(float(x[0].mean()) * 255))


def _is_test_image(x: torch.Tensor) -> bool:
    return abs(float(x[2].mean()) * 255 - TEST_BLUE) < 10


def make_tinyimagenet(root, n_train=7, n_val=1):
    """``root/tiny-imagenet-200`` with 200 classes, wnids.txt in a shuffled order."""
    base = root / "tiny-imagenet-200"
    wnids = [f"n{9000000 + k:08d}" for k in np.random.RandomState(0).permutation(200)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    annotations = []
    for c, wnid in enumerate(wnids):  # Avalanche numbers classes in the order of wnids.txt
        jpeg, val_jpeg = _encoded(c, 64, "JPEG"), _encoded(c, 64, "JPEG", TEST_BLUE)
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(n_train):
            (folder / f"{wnid}_{i}.JPEG").write_bytes(jpeg)
        for i in range(n_val):
            name = f"val_{c * n_val + i}.JPEG"
            (base / "val" / "images" / name).write_bytes(val_jpeg)
            annotations.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return base


def make_core50(base, size=128, runs=(0, 1), frames=FRAMES):
    """``base/core50_<size>x<size>`` and ``base/batches_filelists/{NC,NI}_inc/run<r>`` for a few runs."""
    images = base / f"core50_{size}x{size}"
    for s in TRAIN_SESSIONS + TEST_SESSIONS:
        for o in range(1, 51):
            png = _encoded(o - 1, size, "PNG", TEST_BLUE if s in TEST_SESSIONS else TRAIN_BLUE)
            folder = images / f"s{s}" / f"o{o}"
            folder.mkdir(parents=True)
            for f in range(frames):
                (folder / f"C_{s:02d}_{o:02d}_{f:03d}.png").write_bytes(png)

    def lines(sessions, objects):
        return "".join(f"s{s}/o{o + 1}/C_{s:02d}_{o + 1:02d}_{f:03d}.png {o}\n"
                       for s in sessions for o in objects for f in range(frames))

    for r in runs:
        rng = np.random.RandomState(100 + r)
        order = list(rng.permutation(50))
        nc = base / "batches_filelists" / "NC_inc" / f"run{r}"
        ni = base / "batches_filelists" / "NI_inc" / f"run{r}"
        nc.mkdir(parents=True, exist_ok=True)
        ni.mkdir(parents=True, exist_ok=True)
        groups = [order[:10]] + [order[10 + 5 * i: 15 + 5 * i] for i in range(8)]
        for i, g in enumerate(groups):
            (nc / f"train_batch_{i:02d}_filelist.txt").write_text(lines(TRAIN_SESSIONS, g))
        for i, s in enumerate(rng.permutation(TRAIN_SESSIONS)):
            (ni / f"train_batch_{i:02d}_filelist.txt").write_text(lines([s], range(50)))
        for folder in (nc, ni):
            (folder / "test_filelist.txt").write_text(lines(TEST_SESSIONS, range(50)))
    return base


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    make_tinyimagenet(root)
    return root


@pytest.fixture(scope="module")
def core50_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("core50data")
    make_core50(root / "core50")
    make_core50(root / "core50", size=32, runs=(0,))  # same file lists, the 32x32 folder
    return root


def _labels(exp):
    return [int(y) for y in exp.dataset.targets]


def _tasks(exp):
    return {int(t) for t in exp.dataset.targets_task_labels}


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


# --- Tiny ImageNet -----------------------------------------------------------------------------

def test_tinyimagenet_class_il_has_10_experiences_of_20_classes(tiny_root):
    s = build_benchmark("split_tinyimagenet", "class", seed=3, data_root=tiny_root)
    assert (s.n_experiences, len(s.train_stream), len(s.test_stream)) == (10, 10, 10)
    assert s.n_outputs == 200 and s.input_shape == (3, 64, 64)
    assert s.classes_per_exp == class_groups("split_tinyimagenet", "class", 200, 10, 3)
    seen = []
    for tr, te, classes in zip(s.train_stream, s.test_stream, s.classes_per_exp):
        assert len(classes) == 20 and set(_labels(tr)) == set(classes) == set(_labels(te))
        assert len(tr.dataset) == 20 * 7 and len(te.dataset) == 20 and _tasks(tr) == {0}
        seen += classes
    assert sorted(seen) == list(range(200))
    x, y, _ = s.train_stream[4].dataset[5]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert abs(_class_of(x) - int(y)) <= 2  # the image is the one of its label's wnid
    x, y, _ = s.test_stream[7].dataset[3]
    assert abs(_class_of(x) - int(y)) <= 2
    assert s.benchmark.n_classes == 200 and s.benchmark.n_classes_per_exp == [20] * 10


def test_tinyimagenet_task_and_domain_number_classes_from_zero(tiny_root):
    t = build_benchmark("split_tinyimagenet", "task", seed=0, data_root=tiny_root)
    assert t.multihead and t.n_outputs == 20
    for i, (tr, te) in enumerate(zip(t.train_stream, t.test_stream)):
        assert _tasks(tr) == {i} == _tasks(te) and set(_labels(tr)) == set(range(20))
    x, y, _ = t.train_stream[2].dataset[0]
    assert abs(_class_of(x) - t.classes_per_exp[2][int(y)]) <= 2
    d = build_benchmark("split_tinyimagenet", "domain", seed=0, data_root=tiny_root, n_experiences=4)
    assert not d.multihead and d.n_outputs == 50 and len(d.train_stream) == 4
    assert all(_tasks(e) == {0} and set(_labels(e)) == set(range(50)) for e in d.train_stream)


def test_tinyimagenet_validation_holds_out_training_images(tiny_root):
    s = build_benchmark("split_tinyimagenet", seed=0, data_root=tiny_root, validation=True)
    n_train = sum(len(e.dataset) for e in s.train_stream)
    n_val = sum(len(e.dataset) for e in s.test_stream)
    assert s.validation and n_train + n_val == 200 * 7 and n_val >= 200
    assert set(_labels(s.test_stream[0])) == set(s.classes_per_exp[0])
    held = s.test_stream[0].dataset
    assert not any(_is_test_image(held[i][0]) for i in range(len(held)))  # from train/, never from val/
    assert all(_is_test_image(x) for x, *_ in build_benchmark("split_tinyimagenet", data_root=tiny_root)
               .test_stream[0].dataset)


def test_tinyimagenet_missing_files_refused_before_avalanche_is_called(tmp_path, monkeypatch):
    import avalanche.benchmarks.datasets as datasets

    def never(*a, **k):
        raise AssertionError("TinyImagenet must not be called when files are missing")

    monkeypatch.setattr(datasets, "TinyImagenet", never)
    with pytest.raises(DataNotFoundError, match="tiny-imagenet-200/wnids.txt"):
        build_benchmark("split_tinyimagenet", data_root=tmp_path)
    base = make_tinyimagenet(tmp_path, n_train=1)
    (base / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataNotFoundError, match="val_annotations.txt"):
        build_benchmark("split_tinyimagenet", data_root=tmp_path)
    ok, why = BENCHMARKS["split_tinyimagenet"].availability(tmp_path)
    assert not ok and "val_annotations.txt" in why


def test_tinyimagenet_bad_wnids_and_missing_images(tmp_path):
    base = make_tinyimagenet(tmp_path, n_train=1)
    first_val = base / "val" / "images" / "val_0.JPEG"
    first_val.unlink()
    with pytest.raises(DataNotFoundError, match=r"1 of 200 listed images are missing.*val_0\.JPEG"):
        build_benchmark("split_tinyimagenet", data_root=tmp_path)
    (base / "wnids.txt").write_text("n1\nn2\n")
    with pytest.raises(CorruptDataError, match=r"wnids.txt: Tiny ImageNet has 200 class ids, this file lists 2"):
        build_benchmark("split_tinyimagenet", data_root=tmp_path)


def test_tinyimagenet_wrong_image_size_is_named(tmp_path):
    base = make_tinyimagenet(tmp_path, n_train=1)
    wnid = (base / "wnids.txt").read_text().split()[0]
    for p in (base / "train" / wnid / "images").iterdir():
        p.write_bytes(_encoded(0, 32, "JPEG"))
    with pytest.raises(CorruptDataError, match=r"images are 64 x 64 pixels, this one is 32 x 32"):
        build_benchmark("split_tinyimagenet", data_root=tmp_path)


# --- CORe50 ------------------------------------------------------------------------------------

def test_core50_nc_has_9_experiences_of_new_objects(core50_root):
    s = build_benchmark("core50_nc", seed=0, data_root=core50_root)
    assert s.scenario == "class" and s.n_outputs == 50 and s.input_shape == (3, 128, 128)
    assert (s.n_experiences, len(s.train_stream), len(s.test_stream)) == (9, 9, 9)
    assert [len(g) for g in s.classes_per_exp] == [10] + [5] * 8
    assert sorted(c for g in s.classes_per_exp for c in g) == list(range(50))
    for tr, te, classes in zip(s.train_stream, s.test_stream, s.classes_per_exp):
        assert set(_labels(tr)) == set(classes) == set(_labels(te))
        assert len(tr.dataset) == len(classes) * len(TRAIN_SESSIONS) * FRAMES
        assert len(te.dataset) == len(classes) * len(TEST_SESSIONS) * FRAMES
    x, y, _ = s.train_stream[3].dataset[7]
    assert x.shape == (3, 128, 128) and abs(_class_of(x) - int(y)) <= 1
    assert s.benchmark.n_classes_per_exp == [10] + [5] * 8 and s.benchmark.n_classes == 50


def test_core50_ni_has_8_sessions_of_all_objects_and_one_test_set(core50_root):
    s = build_benchmark("core50_ni", seed=0, data_root=core50_root)
    assert s.scenario == "domain" and not s.multihead and s.n_outputs == 50
    assert (len(s.train_stream), len(s.test_stream)) == (8, 1)
    for exp in s.train_stream:
        assert set(_labels(exp)) == set(range(50)) and len(exp.dataset) == 50 * FRAMES and _tasks(exp) == {0}
    assert len(s.test_stream[0].dataset) == 50 * len(TEST_SESSIONS) * FRAMES
    x, y, _ = s.test_stream[0].dataset[11]
    assert abs(_class_of(x) - int(y)) <= 1


def test_core50_seed_picks_the_run(core50_root):
    a = build_benchmark("core50_nc", seed=1, data_root=core50_root)
    b = build_benchmark("core50_nc", seed=11, data_root=core50_root)
    c = build_benchmark("core50_nc", seed=0, data_root=core50_root)
    assert a.classes_per_exp == b.classes_per_exp != c.classes_per_exp
    with pytest.raises(DataNotFoundError, match=r"run2/train_batch_00_filelist.txt"):
        build_benchmark("core50_nc", seed=2, data_root=core50_root)


def test_core50_validation_holds_out_part_of_each_session(core50_root):
    s = build_benchmark("core50_ni", seed=0, data_root=core50_root, validation=True)
    n_train = sum(len(e.dataset) for e in s.train_stream)
    held = s.test_stream[0].dataset
    assert s.validation and len(s.test_stream) == 1
    assert n_train + len(held) == 8 * 50 * FRAMES and len(held) >= 8 * 50
    assert not any(_is_test_image(held[i][0]) for i in range(0, len(held), 7))  # no test-session image


def test_core50_protocol_fixes_experiences_and_scenario(core50_root):
    with pytest.raises(ValueError, match="its protocol has 9 experiences"):
        build_benchmark("core50_nc", data_root=core50_root, n_experiences=5)
    with pytest.raises(ValueError, match="supports scenarios class, not 'task'"):
        build_benchmark("core50_nc", "task", data_root=core50_root)
    with pytest.raises(ValueError, match="supports scenarios domain"):
        build_benchmark("core50_ni", "class", data_root=core50_root)


def test_core50_build_writes_nothing_into_the_data_root(core50_root):
    before = _files(core50_root)
    build_benchmark("core50_nc", seed=0, data_root=core50_root)
    build_benchmark("core50_ni", seed=1, data_root=core50_root)
    assert _files(core50_root) == before


def test_core50_missing_and_broken_files(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"core50_128x128/"):
        build_benchmark("core50_nc", data_root=tmp_path)
    base = make_core50(tmp_path, runs=(0,), frames=1)  # DATA_ROOT itself is Avalanche's dataset_root
    assert BENCHMARKS["core50_nc"].availability(tmp_path) == (True, f"found in {tmp_path}")
    missing = base / "core50_128x128" / "s4" / "o7" / "C_04_07_000.png"
    missing.unlink()
    with pytest.raises(DataNotFoundError, match=r"1 of \d+ listed images are missing, e\.g\. .*C_04_07_000\.png"):
        build_benchmark("core50_nc", data_root=tmp_path)
    missing.write_bytes(_encoded(6, 128, "PNG"))
    first = (base / "batches_filelists" / "NI_inc" / "run0" / "train_batch_00_filelist.txt").read_text().split()[0]
    (base / "core50_128x128" / first).write_bytes(b"not a png")
    with pytest.raises(CorruptDataError, match=rf"{re.escape(first)}: not a readable image"):
        build_benchmark("core50_ni", data_root=tmp_path)
    lst = base / "batches_filelists" / "NC_inc" / "run0" / "train_batch_03_filelist.txt"
    lst.write_text("one two three\n")
    with pytest.raises(CorruptDataError, match=r"train_batch_03_filelist.txt: not a CORe50 file list"):
        build_benchmark("core50_nc", data_root=tmp_path)
    ok, why = BENCHMARKS["core50_ni_mini"].availability(tmp_path)
    assert not ok and "core50_32x32/" in why


@pytest.mark.parametrize("name, root", [("split_tinyimagenet32", "tiny_root"), ("core50_ni_mini", "core50_root")])
def test_32x32_streams(name, root, request):
    """Tiny ImageNet resized to 32x32; CORe50's own 32x32 folder (the 128x128 images are other files)."""
    s = build_benchmark(name, seed=0, data_root=request.getfixturevalue(root))
    assert s.input_shape == (3, 32, 32)
    x, y, _ = s.train_stream[0].dataset[0]
    assert x.shape == (3, 32, 32) and abs(_class_of(x) - int(y)) <= 2


def test_layouts_name_the_exact_folders():
    assert "tiny-imagenet-200/" in BENCHMARKS["split_tinyimagenet"].layout
    assert "val/val_annotations.txt" in BENCHMARKS["split_tinyimagenet32"].layout
    assert "core50_128x128/" in BENCHMARKS["core50_nc"].layout
    assert "batches_filelists/NC_inc/run<0-9>/" in BENCHMARKS["core50_nc"].layout
    assert "batches_filelists/NI_inc/" in BENCHMARKS["core50_ni_mini"].layout
    assert "core50_32x32/" in BENCHMARKS["core50_ni_mini"].layout
    assert "cifar-10-batches-py" in BENCHMARKS["split_cifar10"].layout
    assert all(spec.layout for spec in BENCHMARKS.values())
