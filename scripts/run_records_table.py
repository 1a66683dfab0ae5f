"""Write a docs snippet table from a perf record of runs (one JSON line per run).

Perf scripts such as ``perf/recipe_seeds.py`` append one JSON line per run (``recipe`` or
``variant``, ``split``, ``overrides``, ``seed``, ``acc``, optionally ``benchmark``, ``scenario``
(``split_mnist5k`` and ``class`` when absent) and ``forgetting``) to ``perf/results/<name>.jsonl``.
This script groups the runs by split and settings and writes
``docs/snippets/runs_<name>.md``: accuracy and forgetting as mean ± sample standard deviation
over seeds (``avalanche_ext.report.stats``) and each seed's accuracy. Method pages include the
snippet, so that no number of the record is typed by hand.

    python scripts/run_records_table.py                       # rewrite every snippet
    python scripts/run_records_table.py --check               # exit 1 if one is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from snippet_file import write_or_check  # noqa: E402

from avalanche_ext.report.stats import fmt, mean_std  # noqa: E402

#: the records that method pages show as tables.
RECORDS = ("generative_replay_val", "generative_replay_test", "generative_replay_avalanche_val")


def _settings(run: dict) -> str:
    overrides = run.get("overrides") or {}
    text = ", ".join(f"`{k}={v}`" for k, v in sorted(overrides.items()))
    return text or "recipe defaults"


def _shares(runs: list[dict]) -> str:
    """The share of the final generator's samples that a reference net gives each task's classes."""
    return "; ".join(", ".join(f"{100 * v:.1f}" for v in r["generator_task_share"])
                     for r in runs if "generator_task_share" in r) or "-"


def table(lines: list[dict], source: str) -> str:
    """The Markdown table of ``lines`` (runs of one record), rows in order of first appearance."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in lines:
        name = run.get("recipe") or run.get("variant", "?")
        groups[(name, run.get("benchmark", "split_mnist5k"), run.get("scenario", "class"), run["split"],
                _settings(run))].append(run)
    shares = any("generator_task_share" in run for run in lines)
    out = [f"Record `{source}`: mean ± sample std over seeds; accuracy and forgetting in %.", "",
           "| recipe or variant | benchmark | scenario | split | settings | accuracy | forgetting | per seed |"
           + (" generator samples per task (%, seed by seed) |" if shares else ""),
           "|---|---|---|---|---|---|---|---|" + ("---|" if shares else "")]
    for (recipe, bench, scenario, split, settings), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        seeds = ", ".join(f"{r['seed']}: {100 * r['acc']:.1f}" for r in runs)
        out.append(f"| `{recipe}` | `{bench}` | {scenario} | {split} | {settings} | "
                   f"{fmt(*mean_std(r['acc'] for r in runs))} | "
                   f"{fmt(*mean_std(r.get('forgetting') for r in runs))} | {seeds} |"
                   + (f" {_shares(runs)} |" if shares else ""))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the snippets are up to date")
    args = parser.parse_args(argv)
    rc = 0
    for name in RECORDS:
        source = Path("perf") / "results" / f"{name}.jsonl"
        lines = [json.loads(line) for line in (ROOT / source).read_text().splitlines() if line.strip()]
        rc |= write_or_check(ROOT / "docs" / "snippets" / f"runs_{name}.md", table(lines, str(source)),
                             check=args.check, command="python scripts/run_records_table.py")
    return rc


if __name__ == "__main__":
    sys.exit(main())
