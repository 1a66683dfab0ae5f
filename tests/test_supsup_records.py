"""The SupSup page's prose on 10 permuted tasks holds on the records it includes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"


def _rows(name: str) -> dict[str, dict[str, str]]:
    """The Markdown table rows of a ``perf/supsup_results.py`` record, by setting."""
    rows, header = {}, None
    for line in (RESULTS / name).read_text().splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "setting":
            header = cells
            continue
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def _mean(cell: str) -> float:
    return float(re.match(r"[-\d.]+", cell).group(0))


def test_ten_permuted_tasks_records_show_what_the_page_says():
    selected, tuned = _rows("supsup_permuted10_test.txt"), _rows("supsup_permuted10_lr_test.txt")
    gg, gns = _mean(selected["gg_permuted"]["accuracy (%)"]), tuned["gns_permuted_10task_lr"]
    assert float(selected["gg_permuted"]["forgetting (points)"].split()[0]) == 0.0  # GG forgets nothing
    # with the 10-task learning rate: one-shot inference >= 95% and domain-IL within a point of GG
    assert _mean(gns["task inference (%)"]) >= 95 and abs(gg - _mean(gns["accuracy (%)"])) < 1
    # the 5-task learning rate infers less often and falls several points below task-IL
    five = selected["gns_permuted"]
    assert _mean(five["task inference (%)"]) < _mean(gns["task inference (%)"])
    assert gg - _mean(five["accuracy (%)"]) > 3
    # GNu allocates one mask per experience; without superfluous outputs inference finds fewer than half
    assert tuned["gnu_permuted_10task_lr"]["masks"] == "10"
    assert _mean(tuned["gns_permuted_10task_lr_no_extra_outputs"]["task inference (%)"]) < 50
    page = (ROOT / "docs" / "methods" / "supsup.md").read_text()
    assert '--8<-- "perf/results/supsup_permuted10_lr_test.txt"' in page
