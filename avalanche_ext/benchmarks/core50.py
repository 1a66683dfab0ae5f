"""CORe50's NC and NI protocols from the unpacked archives, never downloaded.

CORe50 (Lomonaco & Maltoni, CoRL 2017, https://arxiv.org/abs/1705.03550): 50 objects in
10 categories, filmed in 11 sessions; 128x128 RGB crops (``core50_128x128``) or their 32x32
reduction (``core50_32x32``, Avalanche's ``mini=True``). Sessions 3, 7 and 10 are the test
set. The protocols are the file lists of ``batches_filelists.zip``, the same lists
Avalanche's ``CORe50`` benchmark reads:

* **NC** (new classes): 9 experiences, 10 objects then 5 per experience, class-IL over the
  50 objects. Here each experience is evaluated on the test images of its own objects (as
  the other split streams are), not on the whole test set.
* **NI** (new instances): 8 experiences, one session each with all 50 objects, domain-IL;
  evaluated on the whole test set (one test experience).

CORe50 defines 10 runs (orders) of each protocol; the stream's seed picks run
``seed % 10``. The stream is built from the file lists directly, with Avalanche's
file-list reader and ``create_generic_benchmark_from_paths`` (what its ``CORe50`` does
after loading): Avalanche's ``CORe50Dataset`` writes category file lists into the data
root and falls back to downloading when it cannot, which a read-only root would trigger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import CorruptDataError, DataNotFoundError
from .imagefiles import FileStream, Item, check_files_exist, check_image, holdout, paths_benchmark, quiet
from .streams import Stream, mark_class_incremental

N_RUNS = 10
PROTOCOLS = {"nc": ("NC_inc", 9, "class"), "ni": ("NI_inc", 8, "domain")}


def _default_root() -> Path:
    from avalanche.benchmarks.datasets import default_dataset_location

    return default_dataset_location("core50")


class CORe50Files(FileStream):
    """One CORe50 protocol at 128x128 or, with ``mini``, 32x32.

    Args:
        protocol: ``"nc"`` or ``"ni"``.
        mini: read ``core50_32x32`` instead of ``core50_128x128``.
    """

    def __init__(self, protocol: str, mini: bool = False):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol, self.mini = protocol, mini
        self.lists, self.experiences, scenario = PROTOCOLS[protocol]
        self.scenarios = (scenario,)
        self.size = 32 if mini else 128
        self.images = f"core50_{self.size}x{self.size}"

    def list_names(self) -> list[str]:
        return [f"train_batch_{i:02d}_filelist.txt" for i in range(self.experiences)] + ["test_filelist.txt"]

    @property
    def layout(self) -> str:
        return (f"DATA_ROOT/core50/ or DATA_ROOT/ (Avalanche's CORe50 dataset_root) holding {self.images}/"
                f"s<1-11>/o<1-50>/*.png ({self.images}.zip unpacked) and batches_filelists/{self.lists}/"
                f"run<0-9>/{{train_batch_00..{self.experiences - 1:02d},test}}_filelist.txt "
                "(batches_filelists.zip unpacked). Without a data root: Avalanche's default location for "
                "'core50' (~/.avalanche/data/core50/)")

    def candidates(self, data_root: Optional[Path]) -> list[Path]:
        return [Path(data_root) / "core50", Path(data_root)] if data_root else [_default_root()]

    def locate(self, data_root: Optional[Path]) -> Path:
        problems = []
        for base in self.candidates(data_root):
            missing = [p for p in (base / self.images, base / "batches_filelists" / self.lists / "run0")
                       if not p.is_dir()]
            if not missing:
                return base
            problems.append(", ".join(f"{p}/" for p in missing))
        raise DataNotFoundError(
            f"core50: missing {'; or '.join(problems)}. Unpack {self.images}.zip and batches_filelists.zip "
            "(from vlomonaco.github.io/core50) into DATA_ROOT/core50/"
        )

    def read_lists(self, base: Path, run: int) -> list[list[Item]]:
        """The training lists and the test list of ``run``, as ``(absolute path, label)``."""
        from avalanche.benchmarks.utils.datasets_from_filelists import default_flist_reader

        folder = base / "batches_filelists" / self.lists / f"run{run}"
        images = base / self.images
        out = []
        for name in self.list_names():
            path = folder / name
            if not path.is_file():
                raise DataNotFoundError(f"core50: missing {path} (batches_filelists.zip unpacked in full?)")
            try:
                pairs = default_flist_reader(path)
            except (ValueError, UnicodeDecodeError) as e:
                raise CorruptDataError(f"{path}: not a CORe50 file list of '<path> <label>' lines ({e})") from e
            if not pairs:
                raise CorruptDataError(f"{path}: empty file list")
            out.append([(str(images / rel), int(label)) for rel, label in pairs])
        return out

    def build(self, name: str, scenario: str, n_experiences: int, seed: int, data_root: Optional[Path],
              validation: bool) -> Stream:
        base = self.locate(data_root)
        *train, test = self.read_lists(base, seed % N_RUNS)
        for i, items in enumerate([*train, test]):
            what = f"core50 {self.list_names()[i]}"
            check_files_exist(items, what)
            check_image(items[0][0], self.size, "CORe50 " + self.images)
        if validation:
            split = [holdout(items, f"core50 {name}") for items, name in zip(train, self.list_names())]
            train, held = [k for k, _ in split], [h for _, h in split]
            test = [item for h in held for item in h]
        n_classes = 1 + max(label for items in [*train, test] for _, label in items)
        if self.protocol == "nc":
            groups = [sorted({label for _, label in items}) for items in train]
            tests = [[item for item in test if item[1] in set(g)] for g in groups]
        else:
            groups = [list(range(n_classes)) for _ in train]
            tests = [test]
        with quiet():
            bm = paths_benchmark(train, tests, [0] * len(train), None,
                                 complete_test_set_only=self.protocol == "ni")
        if self.protocol == "nc":
            mark_class_incremental(bm, groups, n_classes)
        return Stream(name, scenario, seed, bm, (3, self.size, self.size), n_classes, len(train), groups)


__all__ = ["CORe50Files", "N_RUNS", "PROTOCOLS"]
