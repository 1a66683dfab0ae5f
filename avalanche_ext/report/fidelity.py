"""The fidelity page: each recipe's published number next to ours, with the gap and a stated tolerance.

The published numbers live in a committed reference file (``docs/results/references.yaml``); ours are
computed from the committed taxonomy reports when the page is written. A reference whose report does
not hold our number yet says "not measured" and gives the command that measures it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from .leaderboard import Entrant, measure_command
from .stats import STD_CONVENTION, fmt
from .tables import ResultTable

_KEYS = {"recipe", "benchmark", "scenario", "number", "claim", "paper", "table", "setting", "approximate", "report",
         "flags", "cause"}
_REQUIRED = ("recipe", "benchmark", "scenario", "paper", "table", "setting")


def load_references(path: str | Path) -> dict[str, Any]:
    """The reference file: ``{"tolerance": points, "references": [...]}``, checked entry by entry.

    Raises:
        ValueError: a missing tolerance, an unknown or missing key, or an entry with neither or both of
            ``number`` and ``claim``.
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data.get("tolerance"), (int, float)):
        raise ValueError(f"{path}: give `tolerance:` (points of accuracy) at the top level")
    for i, ref in enumerate(data.get("references") or []):
        missing = [k for k in _REQUIRED if not ref.get(k)]
        unknown = sorted(set(ref) - _KEYS)
        if missing or unknown or (("number" in ref) == ("claim" in ref)):
            raise ValueError(f"{path}: reference {i} ({ref.get('recipe')}) needs {', '.join(_REQUIRED)} and exactly "
                             f"one of number or claim; missing {missing}, unknown {unknown}")
    return data


def fidelity_page(references: dict[str, Any], entrants: Sequence[Entrant], root: str | Path = ".",
                  reference_file: str = "docs/results/references.yaml") -> str:
    """The Markdown fidelity page: one section per recipe, every reference of it with our number and the gap.

    Args:
        references: what :func:`load_references` returned.
        entrants: every recipe, in page order.
        root: the folder the reports' paths are relative to (the repository).
        reference_file: the reference file's path, named on the page.
    """
    tolerance = float(references["tolerance"])
    refs = references.get("references") or []
    tables: dict[str, Optional[ResultTable]] = {}
    lines = ["# Fidelity: our numbers against the published ones", "",
             f"Each row sets a published number (paper, table, setting) next to ours on the closest offline "
             f"benchmark and protocol: average accuracy (%) after the last experience, {STD_CONVENTION}. "
             f"The gap is ours minus the published number, in points. **Tolerance: {tolerance:g} points**; a "
             f"larger gap needs a measured cause, shown by a `perf/` script. Our `split_mnist5k` trains on "
             f"4,000 real MNIST images where the papers use 60,000, so a lower number there is expected; "
             f"a defect is not. An approximate reference (marked ~) must be checked against the paper's table.",
             "", f"The published numbers are in `{reference_file}`; this page is written from it and the "
             f"committed reports by:", "", "```bash", "avalanche-ext leaderboard", "```", ""]
    for entrant in entrants:
        mine = [r for r in refs if r["recipe"] == entrant.name]
        lines += [f"## `{entrant.name}` ({entrant.family})", ""]
        if not mine:
            lines += ["No published number on a comparable benchmark in the reference file yet.", ""]
            continue
        lines += ["| benchmark | scenario | paper | table | setting | published (%) | ours (%) | gap | |",
                  "|---|---|---|---|---|---|---|---|---|"]
        todo = []
        for ref in mine:
            folder = ref.get("report") or f"docs/results/{ref['benchmark']}"
            if folder not in tables:
                path = Path(root) / folder
                tables[folder] = ResultTable.load(path) if (path / "results.csv").is_file() else None
            agg = _aggregate(tables[folder], ref["recipe"], ref["scenario"])
            published = ("~" if ref.get("approximate") else "") + (f"{ref['number']:g}" if "number" in ref
                                                                  else f"claim: {ref['claim']}")
            if agg is None:
                ours, gap, verdict = "not measured", "", ""
                todo.append(_command(ref, folder))
            else:
                ours = fmt(agg["acc_mean"], agg["acc_std"])
                gap, verdict = _gap(ref, agg["acc_mean"], tolerance)
            lines.append(f"| {ref['benchmark']} | {ref['scenario']}-IL | {ref['paper']} | {ref['table']} | "
                         f"{ref['setting']} | {published} | {ours} | {gap} | {verdict} |")
        lines.append("")
        for ref in mine:
            if ref.get("cause"):
                lines += [f"*{ref['benchmark']}, {ref['scenario']}-IL*: {ref['cause']}", ""]
        if todo:
            lines += ["Not measured yet; these commands measure them:", "", "```bash", *dict.fromkeys(todo), "```", ""]
    return "\n".join(lines)


def _aggregate(table: Optional[ResultTable], recipe: str, scenario: str) -> Optional[dict[str, Any]]:
    if table is None:
        return None
    for a in table.aggregate():
        if (a["recipe"], a["scenario"]) == (recipe, scenario) and a["n_ok"] and not math.isnan(a["acc_mean"]):
            return a
    return None


def _gap(ref: dict[str, Any], acc: float, tolerance: float) -> tuple[str, str]:
    """The gap in points and its verdict: within tolerance, or beyond it with or without a measured cause."""
    if "number" not in ref:
        return "", "a claim: compare on the method's page"
    gap = 100 * acc - float(ref["number"])
    if abs(gap) <= tolerance:
        return f"{gap:+.1f}", "within tolerance"
    return f"{gap:+.1f}", "beyond tolerance: " + ("cause below" if ref.get("cause") else "cause not yet measured")


def _command(ref: dict[str, Any], folder: str) -> str:
    command = measure_command(ref["benchmark"], folder, [ref["recipe"]], [ref["scenario"]])
    return command.replace(" --out", f" {ref['flags']} --out") if ref.get("flags") else command
