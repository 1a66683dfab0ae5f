"""Shared by the recipe-check scripts: run one configuration over seeds, summarise as mean ± sample std."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avalanche_ext.runner import RunConfig, run  # noqa: E402
from avalanche_ext.report.stats import mean_spread as spread  # noqa: E402

_TRACKING = f"sqlite:///{tempfile.mkdtemp(prefix='perf-runs-')}/mlflow.db"


def run_seeds(label: str, recipe: str, *, benchmark: str, scenario: str, seeds: Iterable[int],
              overrides: Optional[dict[str, Any]] = None, validation: bool = False, online: bool = False,
              online_size: int = 10, log: Optional[Path] = None) -> list[dict]:
    """Run ``recipe`` once per seed (one thread, tracked in a throw-away store); print one line per run."""
    rows = []
    for seed in seeds:
        cfg = RunConfig(recipe=recipe, benchmark=benchmark, scenario=scenario, seed=seed,
                        overrides=dict(overrides or {}), validation=validation, online=online,
                        online_size=online_size, tracking_uri=_TRACKING, progress=False, threads=1)
        r = run(cfg)
        row = {"label": label, "recipe": recipe, "seed": seed, "scenario": scenario, "online": online,
               "validation": validation, "overrides": dict(overrides or {}), "acc": r["acc"],
               "final_row": r["acc_matrix"][-1], "train_s": r["train_s"]}
        print(f"{label:34} {scenario:6} seed {seed}  acc {100 * r['acc']:5.1f}  final row "
              f"{[round(100 * v, 1) for v in row['final_row']]}  train {r['train_s']:.0f}s", flush=True)
        if log is not None:
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` in percent (ddof=1), with the per-seed values."""
    pct = [100 * v for v in values]
    mean, sd = spread(pct)
    return f"{mean:5.1f} ± {sd:4.1f}  ({', '.join(f'{v:.1f}' for v in pct)})"


def summary(rows: list[dict]) -> None:
    """One line per label (and scenario), in the order first seen."""
    keys = list(dict.fromkeys((r["label"], r["scenario"]) for r in rows))
    print(f"\n{'configuration':34} {'scenario':8} acc % mean ± sample std (per seed)")
    for label, scenario in keys:
        accs = [r["acc"] for r in rows if (r["label"], r["scenario"]) == (label, scenario)]
        print(f"{label:34} {scenario:8} {mean_std(accs)}")
