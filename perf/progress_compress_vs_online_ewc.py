"""Progress & Compress against online EWC, side by side: accuracy, forgetting, time, model size.

Runs the ``progress_compress`` and ``online_ewc`` recipes through the normal runner (one
run at a time, tracked in a throw-away MLflow database under /tmp) on each benchmark /
scenario pair and seed, then prints mean and standard deviation per recipe. ``kb_params``
is the evaluated network (P&C's knowledge base; online EWC's whole network) and
``all_params`` everything P&C holds during training (KB + active column + adaptors).

    python perf/progress_compress_vs_online_ewc.py --seeds 0 1 2
    python perf/progress_compress_vs_online_ewc.py --pairs split_mnist5k:task --seeds 0 --set ewc_lambda=100
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avalanche_ext.report.stats import mean_std  # noqa: E402
from avalanche_ext.runner import RunConfig, run  # noqa: E402


def parse_sets(items):
    out = {}
    for item in items or []:
        key, value = item.split("=", 1)
        out[key] = value
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["split_mnist5k:task", "permuted_mnist5k:domain"],
                   help="benchmark:scenario pairs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=["progress_compress", "online_ewc"])
    p.add_argument("--set", action="append", default=[], help="override for progress_compress (key=value)")
    p.add_argument("--validation", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write every result to this file")
    args = p.parse_args()
    tracking = f"sqlite:///{tempfile.mkdtemp(prefix='pnc-perf-')}/mlflow.db"
    results = []
    for pair in args.pairs:
        benchmark, scenario = pair.split(":")
        for seed in args.seeds:
            for recipe in args.recipes:
                overrides = parse_sets(args.set) if recipe == "progress_compress" else {}
                cfg = RunConfig(recipe=recipe, benchmark=benchmark, scenario=scenario, seed=seed, overrides=overrides,
                                tracking_uri=tracking, progress=False, threads=args.threads,
                                validation=args.validation)
                r = run(cfg)
                r.pop("acc_matrix")
                results.append(r)
                print(f"{benchmark:17} {scenario:6} seed {seed} {recipe:18} acc {r['acc']:.4f}  forgetting "
                      f"{r['forgetting']:.4f}  train {r['train_s']:.0f}s", flush=True)
    print(f"\n{'benchmark':17} {'scenario':8} {'recipe':18} {'acc (mean ± sd)':>18} {'forgetting':>10} {'train_s':>8}")
    for pair in args.pairs:
        benchmark, scenario = pair.split(":")
        for recipe in args.recipes:
            rows = [r for r in results if (r["benchmark"], r["scenario"], r["recipe"]) == (benchmark, scenario, recipe)]
            acc = [r["acc"] for r in rows]
            mean, sd = mean_std(acc)
            print(f"{benchmark:17} {scenario:8} {recipe:18} {mean:10.4f} ± {sd:.4f} "
                  f"{statistics.mean(r['forgetting'] for r in rows):10.4f} "
                  f"{statistics.mean(r['train_s'] for r in rows):8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
