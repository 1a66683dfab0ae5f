"""Choose hyper-parameters on the validation split: a small grid, every point run, the best reported."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .executors import FanOutSettings, dispatch
from .logging import Tracking
from .registry import get_recipe
from .report.stats import STD_CONVENTION, fmt, mean_std
from .runner import RunConfig, validate


@dataclass(kw_only=True)
class SweepConfig(FanOutSettings):
    """Settings of ``avalanche-ext sweep`` (the shared ones: :class:`FanOutSettings`).

    A sweep chooses hyper-parameters on the validation split: its runs always use it.
    """

    recipe: str
    grid: Optional[dict[str, list[Any]]] = None  # None: the recipe's declared grid
    scenario: Optional[str] = None
    experiment: str = "avalanche-ext-sweeps"
    validation: bool = True


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["lr=0.1,0.01", "ewc_lambda=10,100"]`` -> ``{"lr": ["0.1", "0.01"], ...}``."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        key, values = item.split("=", 1)
        grid[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
        if not grid[key.strip()]:
            raise ValueError(f"--grid {key}: no values")
    if not grid:
        raise ValueError("give at least one --grid key=v1,v2")
    return grid


def run_sweep(cfg: SweepConfig) -> list[dict[str, Any]]:
    """Run every grid point (on the validation split) and return them best first.

    Without ``cfg.grid``, the recipe's declared grid is searched (and set as ``cfg.grid``)."""
    recipe = get_recipe(cfg.recipe)
    if not cfg.validation:
        raise ValueError("a sweep chooses hyper-parameters on the validation split: it needs validation=True")
    if not cfg.grid:
        recipe.grid_points()  # raises when the recipe declares no grid
        cfg.grid = {k: list(v) for k, v in recipe.grid.items()}
    keys = list(cfg.grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(cfg.grid[k] for k in keys))]
    jobs = []
    for point in points:
        for seed in range(cfg.seeds):
            job = RunConfig(recipe.name, **{**cfg.shared(), "overrides": {**cfg.overrides, **point}},
                            scenario=cfg.scenario, seed=seed, progress=False)
            validate(job)  # every point type-checks before anything runs
            jobs.append(job)
    tracking = Tracking.connect(cfg.tracking_uri)
    for job in jobs:
        job.tracking_uri = tracking.uri
    results: dict[tuple, list[float]] = {}

    def on_result(job: RunConfig, result: dict[str, Any]) -> None:
        key = tuple(job.overrides[k] for k in keys)
        acc = result["acc"] if result["status"] == "ok" else float("nan")
        results.setdefault(key, []).append(acc)
        print(f"  {dict(zip(keys, key))} seed {job.seed}: "
              + (f"val acc {acc:.4f}" if result["status"] == "ok" else f"FAILED {result['error'][:120]}"),
              file=sys.stderr, flush=True)

    dispatch(jobs, on_result, cfg.executor, workers=cfg.workers, address=cfg.address, cpus_per_task=cfg.cpus_per_task,
             gpus_per_run=cfg.gpus_per_run)
    rows = []
    for key, accs in results.items():
        mean, std = mean_std(accs)
        rows.append({**dict(zip(keys, key)), "val_acc_mean": mean, "val_acc_std": std, "n": len(accs),
                     "n_failed": sum(np.isnan(a) for a in accs)})
    rows.sort(key=lambda r: -np.nan_to_num(r["val_acc_mean"], nan=-1.0))
    return rows


def sweep_table(cfg: SweepConfig, rows: list[dict[str, Any]]) -> str:
    """The grid as a Markdown table, best first (validation accuracy in %, mean ± sample std over seeds)."""
    return grid_table(list(cfg.grid), rows)


def grid_table(keys: list[str], rows: list[dict[str, Any]], marks: Optional[list[str]] = None) -> str:
    """Grid points as a Markdown table: their ``keys``, validation accuracy (mean ± sample std, in %), runs
    and, with ``marks``, a last column per row (``chosen``, ``current``)."""
    head = keys + ["val acc (%)", "runs"] + (["selection"] if marks else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows):
        failed = r.get("n_failed", 0)
        runs = f"{r['n'] - failed} ({failed} failed)" if failed else str(r["n"])
        cells = [str(r[k]) for k in keys] + [fmt(r["val_acc_mean"], r["val_acc_std"], digits=2), runs]
        lines.append("| " + " | ".join(cells + ([marks[i]] if marks else [])) + " |")
    return "\n".join(lines)


def write_sweep_record(path: str, cfg: SweepConfig, rows: list[dict[str, Any]], command: str) -> None:
    """Write the sweep as a Markdown record: what was searched, on which split, the command, the table."""
    scenario = cfg.scenario or "the recipe's first scenario"
    fixed = ", ".join(f"`{k}={v}`" for k, v in cfg.overrides.items()) or "none"
    text = (f"# `{cfg.recipe}` on `{cfg.benchmark}`, {scenario}\n\n"
            f"Validation split carved from the training data (the test stream is never used); "
            f"{cfg.seeds} seed(s); fixed settings: {fixed}; {STD_CONVENTION}.\n\n"
            f"```bash\n{command}\n```\n\n{sweep_table(cfg, rows)}\n")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
