"""Run one recipe over several seeds through the runner (what ``avalanche-ext run`` does) and summarise.

Each seed is exactly ``avalanche-ext run RECIPE --benchmark B --scenario S --seed N --threads 1
--no-checkpoint [--validation] [--set k=v ...]``; the script appends the run's JSON result
(plus the settings) to ``--out`` and prints the final accuracy per seed and its mean and
sample standard deviation (ddof=1).

Usage (the generative_replay numbers of this change)::

    python perf/recipe_seeds.py generative_replay --seeds 0 --validation --set gen_iterations=500 \\
        --out perf/results/generative_replay_val.jsonl
    python perf/recipe_seeds.py generative_replay --seeds 0 1 2 --out perf/results/generative_replay_test.jsonl

``perf/results/generative_replay_val.jsonl`` holds the validation runs (seed 0) that chose
the settings: ``gen_iterations`` 500 and 1000 with soft targets, and 1000 with
``targets=hard``. They were run as the equivalent command ``avalanche-ext run
generative_replay --benchmark split_mnist5k --scenario class --seed 0 --json -q --threads 1
--no-checkpoint --validation --set ...``, whose JSON line (the runner's result) is the same
record with ``split`` and ``overrides`` added as this script adds them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avalanche_ext.report.stats import mean_spread  # noqa: E402
from avalanche_ext.runner import RunConfig, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--benchmark", default="split_mnist5k")
    parser.add_argument("--scenario", default="class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-experiences", type=int, default=None)
    parser.add_argument("--validation", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], help="key=value overrides")
    parser.add_argument("--tracking-uri", default="sqlite:////tmp/p3b.db")
    parser.add_argument("--out", default=None, help="append one JSON line per seed to this file")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    accs = []
    for seed in args.seeds:
        res = run(RunConfig(recipe=args.recipe, benchmark=args.benchmark, scenario=args.scenario, seed=seed,
                            n_experiences=args.n_experiences, overrides=overrides, tracking_uri=args.tracking_uri,
                            validation=args.validation, progress=False, threads=1))
        row = {"split": "validation" if args.validation else "test", "overrides": overrides, **res}
        accs.append(100 * res["acc"])
        print(json.dumps({k: row[k] for k in ("recipe", "scenario", "seed", "split", "acc", "forgetting", "train_s")}),
              flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    m, s = mean_spread(accs)
    print(f"{args.recipe} {args.benchmark} {args.scenario} ({'validation' if args.validation else 'test'}, "
          f"{overrides}): {m:.1f} +- {s:.1f}  per seed {[round(a, 1) for a in accs]}")


if __name__ == "__main__":
    main()
