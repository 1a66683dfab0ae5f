"""Helpers of the perf scripts that study task inference: train a recipe as the runner does, keep the strategy.

``train_recipe`` follows ``avalanche_ext.runner.run`` step by step (same benchmark, seeding,
context, shared plugins, training order) but returns the trained strategy instead of a
summary; unlike the runner it does not evaluate the test stream between experiences, so a run
need not match the runner's bit for bit, so that a script can score the trained model's per-task outputs with several
task-inference rules without training again. ``stack`` turns a stream's experiences into
tensors. ``emit`` prints a run's record (and appends it to a file), ``summarise`` prints each accuracy's
mean and sample std over the runs; ``script_parser`` holds the options every such script takes
and ``parse`` reads them (setting the thread count).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from avalanche_ext.benchmarks import build_benchmark  # noqa: E402
from avalanche_ext.plugins import FiniteLossGuard  # noqa: E402
from avalanche_ext.recipe import RecipeContext  # noqa: E402
from avalanche_ext.registry import get_recipe  # noqa: E402
from avalanche_ext.report.stats import mean_spread as spread  # noqa: E402
from avalanche_ext.runner import make_evaluator, seed_everything  # noqa: E402


def train_recipe(recipe_name: str, benchmark: str, scenario: str, seed: int, *, validation: bool,
                 overrides: Optional[dict[str, Any]] = None, n_experiences: Optional[int] = None,
                 build: Any = None):
    """Train ``recipe_name`` on the whole stream; return ``(strategy, stream, hp)``.

    ``build`` replaces the recipe's ``build(ctx)`` (a prototype of a changed recipe) while
    keeping its hyper-parameters and their per-benchmark values.
    """
    recipe = get_recipe(recipe_name)
    recipe.check_scenario(scenario)
    hp = recipe.resolve(benchmark, overrides or {})
    stream = build_benchmark(benchmark, scenario, n_experiences=n_experiences, seed=seed, validation=validation)
    seed_everything(seed)
    ctx = RecipeContext(stream, hp, make_evaluator([]), plugins=[FiniteLossGuard()], seed=seed)
    strategy = (build or recipe.build)(ctx)
    for exp in stream.train_stream:
        strategy.train(exp)
    return strategy, stream, hp


def stack(experiences) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, experience index)`` of every sample of ``experiences``."""
    xs, ys, es = [], [], []
    for exp in experiences:
        loader = torch.utils.data.DataLoader(exp.dataset, batch_size=1024, shuffle=False)
        for batch in loader:
            xs.append(batch[0])
            ys.append(batch[1])
            es.append(torch.full((len(batch[0]),), int(exp.current_experience)))
    return torch.cat(xs), torch.cat(ys), torch.cat(es)


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Area under the ROC curve of a score that should be higher on ``positive`` than on ``negative``
    (the probability that a random positive outranks a random negative, ties counting one half)."""
    pos, neg = positive.flatten().double(), negative.flatten().double()
    greater = (pos.unsqueeze(1) > neg.unsqueeze(0)).double().mean()
    ties = (pos.unsqueeze(1) == neg.unsqueeze(0)).double().mean()
    return float(greater + 0.5 * ties)


def emit(record: dict, out: Optional[str]) -> None:
    """Print ``record`` as one JSON line; with ``out``, append the same line to that file."""
    print(json.dumps(record), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")


def summarise(records: list[dict], width: int, prefix: str = "") -> None:
    """One line per ``acc_*`` / ``task_acc_*`` key: mean +- sample std in percent, and the per-seed values, after
    a blank line (so that a page can include the summary as a whole block of the record)."""
    print()
    for key in [k for k in records[0] if k.startswith("acc_") or k.startswith("task_acc_")]:
        m, s = spread([100 * r[key] for r in records])
        print(f"{prefix}{key:{width}s} {m:6.2f} +- {s:5.2f}   per seed: {[round(100 * r[key], 2) for r in records]}")


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options the trained-recipe scripts share: seeds, split, overrides, threads, output file."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--test", action="store_true", help="evaluate on the test split (default: validation)")
    parser.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append one JSON line per run to this file")
    return parser


def parse(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, dict[str, str]]:
    """Parse the command line, set torch's thread count, and return the arguments and the ``--set`` overrides."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args, dict(kv.split("=", 1) for kv in args.set)
