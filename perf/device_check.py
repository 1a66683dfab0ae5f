"""Device check: accuracy against the committed CPU report, training cost per recipe, peak device memory.

One command for a machine with a GPU (``--device auto`` takes CUDA where torch sees it):

    python perf/device_check.py                  # full sizes on a GPU, small sizes on the CPU
    python perf/device_check.py --device cuda:1 --workers 4
    python perf/device_check.py --small          # the CPU-sized check, on any device

It does three things and writes one Markdown table per part to ``perf/results/device_check_<device>.md``
(``..._small.md`` for the small sizes), printing the same tables:

1. **Accuracy.** The taxonomy on ``split_mnist5k`` with seed 0 on the chosen device, each (recipe,
   scenario) beside the accuracy of the committed CPU report for seed 0
   (``docs/results/split_mnist5k/results.csv``). The small sizes run ``naive`` in class-IL only.
2. **Training cost.** Every recipe builds its strategy on the reduced ResNet-18 (``--arch``, default
   ``resnet18``) for synthetic 32x32 RGB inputs (10 classes in 2 experiences, batch 32), trains the
   first experience untimed and times each training step (forward, loss, backward, update, with the
   plugins' hooks) of the second. Reported: milliseconds per step, its ratio to ``naive`` measured
   in the same process, and the new samples per second. Synthetic tensors are enough: the data does
   not change the speed.
3. **Peak device memory** of each recipe's training (``torch.cuda.max_memory_allocated``); ``n/a`` off CUDA.

A recipe that cannot build or train on the architecture is listed with the reason instead of numbers.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402

from avalanche_ext.benchmarks.sources import Source  # noqa: E402
from avalanche_ext.benchmarks.streams import split_stream  # noqa: E402
from avalanche_ext.devices import resolve_device  # noqa: E402
from avalanche_ext.recipe import RecipeContext  # noqa: E402
from avalanche_ext.registry import all_recipes, get_recipe  # noqa: E402
from avalanche_ext.runner import make_evaluator  # noqa: E402
from avalanche_ext.taxonomy import TaxonomyConfig, run_taxonomy  # noqa: E402

REPORT = ROOT / "docs" / "results" / "split_mnist5k" / "results.csv"
RESULTS = ROOT / "perf" / "results"
SEED = 0

#: (training samples per class, timed epochs) of the synthetic stream.
SIZES = {"full": (250, 1), "small": (16, 1)}
#: Hyper-parameters that only shorten a recipe's extra training (a VAE's epochs) where it has them.
FAST = {"vae_epochs": 1}
BATCH = 32


# ----- 1. accuracy against the CPU report ----------------------------------------------------------
def cpu_report(path: Path = REPORT, seed: int = SEED) -> dict[tuple[str, str], float]:
    """``{(recipe, scenario): acc}`` of the committed CPU report for ``seed``."""
    with open(path, newline="") as f:
        return {(r["recipe"], r["scenario"]): float(r["acc"]) for r in csv.DictReader(f)
                if r["seed"] == str(seed) and r["status"] == "ok"}


def accuracy_rows(device: str, small: bool, workers: int, report: dict) -> list[dict[str, Any]]:
    """Run the taxonomy on ``split_mnist5k`` (seed 0) and pair each run with the report."""
    recipes = ["naive"] if small else sorted({r for r, _ in report})
    scenarios = ["class"] if small else None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TaxonomyConfig(benchmark="split_mnist5k", recipes=recipes, scenarios=scenarios, seeds=1,
                             device=device, executor="serial" if small else "process", workers=workers,
                             tracking_uri=f"sqlite:///{tmp}/m.db", out=f"{tmp}/report")
        table = run_taxonomy(cfg)
    rows = []
    for r in sorted(table.rows, key=lambda r: (r["recipe"], r["scenario"])):
        cpu = report.get((r["recipe"], r["scenario"]))
        acc = float(r["acc"]) if r["status"] == "ok" else None
        rows.append({"recipe": r["recipe"], "scenario": r["scenario"], "acc": acc, "cpu_acc": cpu,
                     "diff": None if acc is None or cpu is None else acc - cpu,
                     "note": "" if r["status"] == "ok" else str(r.get("error", ""))[:120]})
    return rows


# ----- 2. and 3. training cost and memory ----------------------------------------------------------
class StepTimer(SupervisedPlugin):
    """Times every training iteration (its hooks included) after ``sync`` has waited for the device."""

    def __init__(self, sync: Callable[[], None]):
        super().__init__()
        self.sync, self.times, self._t0 = sync, [], 0.0
        self.active = False

    def before_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.active:
            self.sync()
            self._t0 = time.perf_counter()

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.active:
            self.sync()
            self.times.append(time.perf_counter() - self._t0)


def synthetic_stream(scenario: str, per_class: int):
    """10 classes of 32x32 RGB noise in [0, 1] with a class-dependent mean, in 2 experiences of ``scenario``."""
    g = torch.Generator().manual_seed(SEED)

    def split(n):
        y = torch.arange(10).repeat(n)
        return torch.rand(len(y), 3, 32, 32, generator=g) * 0.5 + y[:, None, None, None] / 20, y  # in [0, 1], as images

    (xtr, ytr), (xte, yte) = split(per_class), split(2)
    return split_stream(Source("synthetic32", xtr, ytr, xte, yte), "synthetic32", scenario, 2, SEED)


def measure(recipe, device: torch.device, arch: str, per_class: int, epochs: int) -> dict[str, Any]:
    """One recipe's training cost on the synthetic stream; ``note`` says why there are no numbers."""
    scenario = "class" if "class" in recipe.scenarios else recipe.scenarios[0]
    row: dict[str, Any] = {"recipe": recipe.name, "scenario": scenario, "ms_per_step": None, "samples_s": None,
                           "peak_mb": None, "note": ""}
    cuda = device.type == "cuda"
    timer = StepTimer(lambda: torch.cuda.synchronize(device) if cuda else None)
    try:
        stream = synthetic_stream(scenario, per_class)
        defaults = recipe.defaults()
        overrides = {"arch": arch, "batch_size": BATCH, "epochs": epochs,
                     **{k: v for k, v in FAST.items() if k in defaults}}
        ctx = RecipeContext(stream, recipe.resolve(None, overrides), make_evaluator([]), plugins=[timer],
                            device=device, seed=SEED)
        torch.manual_seed(SEED)
        strategy = recipe.build(ctx)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        if recipe.trains_once:
            timer.active = True
            strategy.train(stream.train_stream)
            samples = sum(len(e.dataset) for e in stream.train_stream) * epochs
        else:
            strategy.train(stream.train_stream[0])
            timer.active = True
            strategy.train(stream.train_stream[1])
            samples = len(stream.train_stream[1].dataset) * epochs
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row's reason
        row["note"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if not isinstance(exc, (ValueError, TypeError)):
            traceback.print_exc()
        return row
    if not timer.times:
        row["note"] = "no training iteration went through the template's hooks: nothing to time"
        return row
    row["ms_per_step"] = 1000 * sum(timer.times) / len(timer.times)
    row["samples_s"] = samples / sum(timer.times)
    row["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return row


def cost_rows(device: torch.device, arch: str, small: bool, recipes: Optional[list[str]]) -> list[dict]:
    """Every recipe's training cost, ``naive`` first (after one untimed warm-up run of it); ratios are to
    ``naive``'s time per step."""
    per_class, epochs = SIZES["small" if small else "full"]
    chosen = [get_recipe(r) for r in recipes] if recipes else all_recipes()
    chosen = [get_recipe("naive")] + [r for r in chosen if r.name != "naive"]
    measure(chosen[0], device, arch, per_class, epochs)  # warm-up: the first strategy pays for lazy set-ups
    rows = []
    for recipe in chosen:
        rows.append(measure(recipe, device, arch, per_class, epochs))
        print(f"  {recipe.name}: {rows[-1]['ms_per_step'] or rows[-1]['note']}", file=sys.stderr, flush=True)
    base = rows[0]["ms_per_step"]
    for row in rows:
        row["ratio"] = row["ms_per_step"] / base if base and row["ms_per_step"] else None
    return rows


# ----- the tables ---------------------------------------------------------------------------------
def _fmt(value: Any, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def markdown(device: torch.device, arch: str, small: bool, acc: list[dict], cost: list[dict], argv: list[str]) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    per_class, epochs = SIZES["small" if small else "full"]
    memory = "n/a" if device.type != "cuda" else "-"
    lines = [f"# Device check on {device} ({name})", "",
             f"Command: `python perf/device_check.py {' '.join(argv)}`; torch {torch.__version__}; "
             f"{'small' if small else 'full'} sizes; {os.cpu_count()} CPU cores, load average "
             f"{os.getloadavg()[0]:.1f} when the table was written (timings on a loaded machine are noisy).", "",
             f"## Accuracy on split_mnist5k, seed {SEED}, beside the committed CPU report", "",
             "| recipe | scenario | acc here | acc CPU report | difference | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['recipe']} | {r['scenario']} | {_fmt(r['acc'], '.3f')} | {_fmt(r['cpu_acc'], '.3f')} | "
              f"{_fmt(r['diff'], '+.3f')} | {r['note']} |" for r in acc]
    lines += ["", f"## Training cost on {arch} with 32x32 inputs, batch {BATCH}",
              "", f"Synthetic stream: 10 classes, {per_class} training samples per class, 2 experiences; the second "
              f"experience is timed ({epochs} epoch). `x naive` is the time per step over naive's, in this process.",
              "", "| recipe | scenario | ms/step | x naive | samples/s | peak memory (MiB) | note |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['recipe']} | {r['scenario']} | {_fmt(r['ms_per_step'], '.1f')} | {_fmt(r['ratio'], '.2f')} | "
              f"{_fmt(r['samples_s'], '.0f')} | {_fmt(r['peak_mb'], '.0f', memory)} | {r['note']} |" for r in cost]
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA where present), cpu, cuda, cuda:N, mps")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", default=None, help="tiny sizes (the default on the CPU)")
    size.add_argument("--full", dest="small", action="store_false", help="full sizes (the default on a GPU)")
    ap.add_argument("--arch", default="resnet18", help="the backbone of the cost part (default resnet18)")
    ap.add_argument("--recipes", default=None, help="comma-separated recipes of the cost part (default: all)")
    ap.add_argument("--workers", type=int, default=4, help="processes of the accuracy taxonomy (full sizes)")
    ap.add_argument("--skip-accuracy", action="store_true", help="only the cost and memory part")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process (default: torch's)")
    ap.add_argument("--out", default=None, help="the Markdown table (default perf/results/device_check_<device>.md)")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    small = device.type == "cpu" if args.small is None else args.small
    acc = [] if args.skip_accuracy else accuracy_rows(str(device), small, args.workers, cpu_report())
    cost = cost_rows(device, args.arch, small, args.recipes.split(",") if args.recipes else None)
    text = markdown(device, args.arch, small, acc, cost, argv)
    tag = str(device).replace(":", "")
    out = Path(args.out) if args.out else RESULTS / f"device_check_{tag}{'_small' if small else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
