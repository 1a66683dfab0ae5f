"""Notes of a report: one sentence per (recipe, scenario) saying why a method sits below ``naive``.

A report folder may hold ``notes.json``, ``{"recipe/scenario": "sentence"}``, committed next to the
report; the report and the leaderboard show each note under its scenario's table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

#: The file of notes in a report folder.
NOTES_FILE = "notes.json"


def load_notes(folder: str | Path) -> dict[str, str]:
    """The notes of the report in ``folder`` (``{}`` without a notes file).

    Raises:
        ValueError: a notes file that is not ``{"recipe/scenario": "sentence"}``.
    """
    path = Path(folder) / NOTES_FILE
    if not path.is_file():
        return {}
    notes = json.loads(path.read_text())
    bad = [k for k, v in notes.items() if k.count("/") != 1 or not isinstance(v, str) or not v.strip()] \
        if isinstance(notes, dict) else ["(not a mapping)"]
    if bad:
        raise ValueError(f"{path}: notes map 'recipe/scenario' to a sentence; bad entries: {bad}")
    return notes


def below_naive(aggregate: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The aggregate rows whose mean accuracy is below ``naive``'s in the same scenario."""
    rows = list(aggregate)
    naive = {a["scenario"]: a["acc_mean"] for a in rows if a["recipe"] == "naive" and not math.isnan(a["acc_mean"])}
    return [a for a in rows if a["scenario"] in naive and a["recipe"] != "naive"
            and not math.isnan(a["acc_mean"]) and a["acc_mean"] < naive[a["scenario"]]]


def unexplained_below_naive(aggregate: Iterable[dict[str, Any]], notes: dict[str, str]) -> list[str]:
    """``recipe/scenario`` of every row below ``naive`` that no note explains."""
    return [f"{a['recipe']}/{a['scenario']}" for a in below_naive(aggregate)
            if f"{a['recipe']}/{a['scenario']}" not in notes]
