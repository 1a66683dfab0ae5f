"""HAT's accuracy under two SGD settings: the paper's learning rate with few epochs, and the recipe's tuned one.

Usage: python perf/hat_settings.py [--benchmark split_digits] [--seeds 0 1 2]

Runs the ``hat`` recipe (task-IL) with ``lr=0.05, epochs=5`` and with ``lr=0.1, epochs=10``
for each seed, and writes a Markdown table of the final average accuracy and forgetting to
``perf/results/hat_settings_<benchmark>.md`` (the HAT page includes that file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from avalanche_ext.runner import RunConfig, run
from avalanche_ext.report.stats import mean_spread as spread

#: (lr, epochs) pairs compared; everything else is the recipe's default.
SETTINGS = ((0.05, 5), (0.1, 10))
RESULTS = Path(__file__).resolve().parent / "results"


def mean_sd(values: list[float]) -> str:
    mean, sd = spread(values)
    return f"{100 * mean:.2f} ± {100 * sd:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="split_digits")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for lr, epochs in SETTINGS:
            accs, forgetting = [], []
            for seed in args.seeds:
                result = run(RunConfig(recipe="hat", benchmark=args.benchmark, scenario="task", seed=seed,
                                       epochs=epochs, overrides={"lr": lr}, threads=1, progress=False,
                                       tracking_uri=f"sqlite:///{tmp}/hat_settings.db"))
                accs.append(result["acc"])
                forgetting.append(result["forgetting"])
                print(f"lr={lr} epochs={epochs} seed={seed}: acc {result['acc']:.4f}", file=sys.stderr)
            per_seed = ", ".join(f"{100 * a:.2f}" for a in accs)
            rows.append(f"| SGD lr={lr}, {epochs} epochs | {mean_sd(accs)} | {mean_sd(forgetting)} | {per_seed} |")
    seeds = " ".join(map(str, args.seeds))
    table = "\n".join([
        f"`python perf/hat_settings.py --benchmark {args.benchmark} --seeds {seeds}` (task-IL, test split, "
        "mean ± standard deviation over seeds, in %)",
        "",
        "| setting | accuracy after the last task | forgetting | per seed |",
        "|---|---|---|---|",
        *rows,
    ])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"hat_settings_{args.benchmark}.md"
    out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
