"""Split Tiny ImageNet from the unpacked ``tiny-imagenet-200`` folder, never downloaded.

200 classes of 64x64 RGB images (500 training and 50 labelled validation images each;
the validation split is the test set, as in Avalanche's ``SplitTinyImageNet``). The
standard protocol deals the classes into 10 experiences of 20; the seed fixes the class
order exactly as for the other split streams. ``size=32`` resizes the images to 32x32,
the input size of the reduced ResNet-18 that many CL papers use on this data set.

The files are listed by Avalanche's own ``TinyImagenet`` class (``download=False``, and
only after the layout has been checked here, so a missing file never leads to a
download attempt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import CorruptDataError, DataNotFoundError
from .imagefiles import FileStream, Item, check_files_exist, check_image, holdout, paths_benchmark, quiet, require
from .streams import SCENARIOS, Stream, class_groups, mark_class_incremental

FOLDER = "tiny-imagenet-200"
N_CLASSES = 200
IMAGE_SIZE = 64
HINT = ("Unpack tiny-imagenet-200.zip (from cs231n.stanford.edu) into the data root, so that "
        f"DATA_ROOT/{FOLDER}/wnids.txt exists.")


def _default_root() -> Path:
    from avalanche.benchmarks.datasets import default_dataset_location

    return default_dataset_location("tinyimagenet")


def read_wnids(path: Path) -> list[str]:
    """The class ids of ``wnids.txt``, in file order (Avalanche numbers the classes in this order)."""
    wnids = list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))
    if len(wnids) != N_CLASSES:
        raise CorruptDataError(f"{path}: Tiny ImageNet has {N_CLASSES} class ids, this file lists {len(wnids)}")
    return wnids


class TinyImageNetFiles(FileStream):
    """Split Tiny ImageNet at 64x64, or resized to ``size x size``.

    Args:
        size: side of the images the stream yields; ``None`` keeps the 64x64 originals.
    """

    scenarios = SCENARIOS
    experiences = None

    def __init__(self, size: Optional[int] = None):
        self.size = size

    @property
    def layout(self) -> str:
        return (f"DATA_ROOT/{FOLDER}/ (tiny-imagenet-200.zip unpacked; the folder Avalanche's "
                "TinyImagenet(root=DATA_ROOT) reads): wnids.txt (200 class ids), "
                "train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt "
                "(the labelled val split is the test set). Without a data root: Avalanche's default "
                f"location for 'tinyimagenet' (~/.avalanche/data/tinyimagenet/{FOLDER}/)")

    def locate(self, data_root: Optional[Path]) -> Path:
        root = Path(data_root) if data_root else _default_root()
        base = root / FOLDER
        what = "tinyimagenet"
        wnids = read_wnids(require(base / "wnids.txt", what, HINT))
        require(base / "val" / "val_annotations.txt", what, HINT)
        require(base / "val" / "images", what, HINT)
        missing = [w for w in wnids if not (base / "train" / w / "images").is_dir()]
        if missing:
            raise DataNotFoundError(f"{what}: {len(missing)} of {N_CLASSES} classes have no folder "
                                    f"{base}/train/<wnid>/images/, e.g. {', '.join(missing[:3])}. {HINT}")
        return root

    def build(self, name: str, scenario: str, n_experiences: int, seed: int, data_root: Optional[Path],
              validation: bool) -> Stream:
        root = self.locate(data_root)
        train, test = _list_items(root)
        if validation:
            train, test = holdout(train, "tinyimagenet train")
        groups = class_groups(name, scenario, N_CLASSES, n_experiences, seed)
        train_exps, test_exps = _deal(train, groups, scenario), _deal(test, groups, scenario)
        task_labels = list(range(n_experiences)) if scenario == "task" else [0] * n_experiences
        with quiet():
            bm = paths_benchmark(train_exps, test_exps, task_labels, self.size)
        if scenario == "class":
            mark_class_incremental(bm, groups, N_CLASSES)
        side = self.size or IMAGE_SIZE
        n_outputs = N_CLASSES if scenario == "class" else max(len(g) for g in groups)
        return Stream(name, scenario, seed, bm, (3, side, side), n_outputs, n_experiences, groups)


def _list_items(root: Path) -> tuple[list[Item], list[Item]]:
    """Training and test ``(path, label)`` pairs as Avalanche's ``TinyImagenet`` lists them, checked."""
    from avalanche.benchmarks.datasets import TinyImagenet

    base = root / FOLDER
    splits = []
    for train in (True, False):
        try:
            with quiet():
                ds = TinyImagenet(root, train=train, download=False)
        except Exception as e:  # noqa: BLE001 - whatever Avalanche's reader trips on, the folder is the cause
            raise CorruptDataError(f"{base}: Avalanche's TinyImagenet could not list the "
                                   f"{'training' if train else 'validation'} images ({type(e).__name__}: {e})") from e
        items = [(str(p), int(y)) for p, y in zip(ds.data, ds.targets)]
        what = f"tinyimagenet {'train' if train else 'val'}"
        empty = sorted(set(range(N_CLASSES)) - {y for _, y in items})
        if empty:
            where = "train/<wnid>/images/" if train else "val/val_annotations.txt"
            raise DataNotFoundError(f"{what}: {len(empty)} classes have no image in {base}/{where}, e.g. "
                                    f"{', '.join(ds.id2label[c] for c in empty[:3])}")
        check_files_exist(items, what)
        check_image(items[0][0], IMAGE_SIZE, "Tiny ImageNet")
        splits.append(items)
    return splits[0], splits[1]


def _deal(items: list[Item], groups: list[list[int]], scenario: str) -> list[list[Item]]:
    """One list per experience; class ids kept (class-IL) or numbered from 0 in each experience."""
    where = {c: (e, i) for e, g in enumerate(groups) for i, c in enumerate(g)}
    out: list[list[Item]] = [[] for _ in groups]
    for path, label in items:
        e, i = where[label]
        out[e].append((path, label if scenario == "class" else i))
    return out


__all__ = ["FOLDER", "IMAGE_SIZE", "N_CLASSES", "TinyImageNetFiles", "read_wnids"]
