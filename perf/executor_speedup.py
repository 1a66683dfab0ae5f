"""Wall-clock speed-up of the executors on the same grid: serial vs. local process pool vs. local Ray.

Runs one small taxonomy grid (recipes x seeds, class-IL, ``split_mnist5k`` by default) with each
executor in turn, in this order, each writing to its own throw-away report folder and
MLflow store, and prints the wall time of each and its ratio to ``serial``, and the largest
difference between each pair of executors' accuracy matrices. ``process`` and ``ray`` give every
run one PyTorch thread on 2 cores; ``serial`` runs with PyTorch's default threads.

    python perf/executor_speedup.py                       # serial, process (2 workers), ray (2 CPUs)
    python perf/executor_speedup.py --executors serial process --seeds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avalanche_ext.taxonomy import TaxonomyConfig, run_taxonomy  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executors", nargs="+", default=["serial", "process", "ray"])
    ap.add_argument("--benchmark", default="split_mnist5k")
    ap.add_argument("--recipes", default="naive,ewc,si,lwf")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()

    walls, matrices = {}, {}
    for executor in args.executors:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TaxonomyConfig(benchmark=args.benchmark, recipes=args.recipes.split(","), scenarios=["class"],
                                 seeds=args.seeds, epochs=args.epochs, tracking_uri=f"sqlite:///{tmp}/m.db",
                                 out=f"{tmp}/report", executor=executor, workers=args.workers)
            t0 = time.perf_counter()
            table = run_taxonomy(cfg)
            walls[executor] = time.perf_counter() - t0
            # keyed by run: the table lists runs in the order they finished, which differs between executors
            matrices[executor] = {(r["recipe"], r["scenario"], r["seed"]): json.loads(r["acc_matrix"]) for r in table.rows}
    print(f"\ngrid: {args.recipes} x {args.seeds} seed(s) on {args.benchmark} class-IL; workers {args.workers}")
    print(f"{'executor':10} {'wall (s)':>9} {'speed-up vs serial':>19}")
    for executor, wall in walls.items():
        ratio = f"{walls['serial'] / wall:.2f}x" if "serial" in walls else "n/a"
        print(f"{executor:10} {wall:9.1f} {ratio:>19}")
    names = list(matrices)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diff = max(abs(x - y) for key in matrices[a] for r1, r2 in zip(matrices[a][key], matrices[b][key])
                       for x, y in zip(r1, r2))
            print(f"largest accuracy difference {a} vs {b}: {diff:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
