"""The leaderboard of a benchmark: every recipe in every scenario it supports, from a committed report.

The page is written from a taxonomy report folder (``results.csv`` and ``summary.json``); a recipe the
report does not hold yet gets a row that says "not measured", and the page gives the command that
measures it. No number on the page is typed: each one is computed from ``results.csv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .stats import STD_CONVENTION, fmt
from .tables import ResultTable

#: How many seeds a leaderboard row should hold; a row with fewer says so.
LEADERBOARD_SEEDS = 3


@dataclass(frozen=True)
class Entrant:
    """A recipe as the leaderboard needs it (the report layer never reads the registry).

    Attributes:
        name: the recipe's name.
        family: its taxonomy family.
        scenarios: the scenarios it supports.
    """

    name: str
    family: str
    scenarios: tuple[str, ...]


def measure_command(benchmark: str, folder: str | Path, recipes: Sequence[str] = (),
                    scenarios: Sequence[str] = ()) -> str:
    """The ``avalanche-ext taxonomy`` command that adds ``recipes`` (all when empty) to the report in ``folder``."""
    parts = ["avalanche-ext taxonomy", f"--benchmark {benchmark}", f"--seeds {LEADERBOARD_SEEDS}"]
    if scenarios:
        parts.append(f"--scenarios {','.join(scenarios)}")
    if recipes:
        parts.append(f"--recipes {','.join(recipes)}")
    return " ".join(parts + [f"--out {folder}", "--resume"])


def leaderboard_page(benchmark: str, folder: str, scenarios: Sequence[str], entrants: Sequence[Entrant],
                     title: Optional[str] = None, root: str | Path = ".") -> str:
    """The Markdown leaderboard of ``benchmark`` from the report in ``folder`` (which may not exist yet).

    Args:
        benchmark: the benchmark's catalogue name.
        folder: the taxonomy report folder the numbers come from, relative to ``root`` (as the page names it).
        scenarios: the scenarios the benchmark offers, in page order.
        entrants: every recipe that should be on the page.
        title: the page title (default: the benchmark).
        root: the folder the report's path is relative to (the repository).
    """
    path = Path(root) / folder
    table = ResultTable.load(path) if (path / "results.csv").is_file() else None
    aggs = {(a["recipe"], a["scenario"]): a for a in table.aggregate()} if table else {}
    lines = [f"# Leaderboard: {title or f'`{benchmark}`'}", "",
             f"Every recipe in every scenario it supports, ranked by average accuracy after the last experience; "
             f"{STD_CONVENTION}. *Task inference*: how often a recipe that infers the task without task labels "
             f"picks the right one (`-`: it infers none or is given the task). The numbers are computed from "
             + (f"[the report]({_link(folder)})" if table else f"the report in `{folder}` (not made yet)")
             + " when this page is written:", "", "```bash",
             "avalanche-ext leaderboard", "```", "", "The report is made (or completed) by:", "", "```bash",
             (table.command if table and table.command else measure_command(benchmark, folder)), "```", ""]
    for scenario in scenarios:
        runs = [e for e in entrants if scenario in e.scenarios]
        if not runs:
            continue
        measured = sorted((e for e in runs if _measured(aggs.get((e.name, scenario)))),
                          key=lambda e: (-aggs[(e.name, scenario)]["acc_mean"], e.name))
        missing = [e for e in runs if e not in measured]
        lines += [f"## {scenario}-incremental", "",
                  "| rank | recipe | family | accuracy (%) | forgetting (%) | task inference (%) | seeds |",
                  "|---|---|---|---|---|---|---|"]
        for rank, e in enumerate(measured, 1):
            a = aggs[(e.name, scenario)]
            seeds = str(a["n_ok"]) + (f" (of {LEADERBOARD_SEEDS})" if a["n_ok"] < LEADERBOARD_SEEDS else "")
            lines.append(f"| {rank} | {e.name} | {e.family} | {fmt(a['acc_mean'], a['acc_std'])} | "
                         f"{fmt(a['forgetting_mean'], a['forgetting_std'])} | "
                         f"{fmt(a['task_inference_mean'], a['task_inference_std'])} | {seeds} |")
        lines += [f"| - | {e.name} | {e.family} | not measured | | | 0 |" for e in missing]
        lines.append("")
        if table:
            lines += table.notes_lines(scenario, [aggs[(e.name, scenario)] for e in runs if (e.name, scenario) in aggs])
        if missing:
            lines += ["Not measured yet; this command measures them:", "", "```bash",
                      measure_command(benchmark, folder, [e.name for e in missing], [scenario]), "```", ""]
    return "\n".join(lines)


def _measured(agg: Optional[dict[str, Any]]) -> bool:
    return agg is not None and agg["n_ok"] > 0 and not math.isnan(agg["acc_mean"])


def _link(folder: str) -> str:
    """The report's page as a link from a leaderboard page in ``docs/results/leaderboards/``."""
    prefix = "docs/results/"
    return ("../" + folder[len(prefix):] if folder.startswith(prefix) else folder) + "/results.md"
