"""The SupSup page's many-task table is the one its record gives, and its prose holds on that record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"
sys.path.insert(0, str(ROOT / "perf"))


def test_the_scale_table_is_written_from_its_record_and_the_page_includes_it():
    from supsup_scale import markdown

    record = json.loads((RESULTS / "supsup_scale.json").read_text())
    assert (RESULTS / "supsup_scale.md").read_text() == markdown(record)
    page = (ROOT / "docs" / "methods" / "supsup.md").read_text()
    assert '--8<-- "perf/results/supsup_scale.md"' in page
    assert "| 50 |" not in page  # no typed copy beside the included one


def test_the_page_prose_holds_on_the_record():
    points = json.loads((RESULTS / "supsup_scale.json").read_text())["points"]
    first, last = points[0], points[-1]
    inf = last["task_inference"]
    # "one-shot inference fades as tasks accumulate"
    assert last["task_inference"]["oneshot_sample"] < first["task_inference"]["oneshot_sample"] - 0.3
    # "the binary search holds up better per sample at 50 tasks"
    assert last["tasks"] == 50 and inf["binary_sample"] > inf["oneshot_sample"]
    # "the per-batch exhaustive search stays near perfect"
    assert min(p["task_inference"]["exhaustive_batch"] for p in points) >= 0.95
    # "the accuracy with the true mask does not move"
    assert max(p["acc"]["gg"] for p in points) - min(p["acc"]["gg"] for p in points) < 0.02
