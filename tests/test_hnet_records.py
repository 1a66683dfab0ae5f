"""The HNET page's side-by-side table with hypnettorch is the one its record gives, and its prose holds on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"
sys.path.insert(0, str(ROOT / "perf"))


def records() -> list[dict]:
    return [json.loads(line) for line in (RESULTS / "hnet_vs_hypnettorch.jsonl").read_text().splitlines() if line]


def test_the_table_is_written_from_the_record_and_the_page_includes_it():
    from hnet_vs_hypnettorch import markdown

    assert (RESULTS / "hnet_vs_hypnettorch.md").read_text() == markdown(records())
    page = (ROOT / "docs" / "methods" / "hnet.md").read_text()
    assert '--8<-- "perf/results/hnet_vs_hypnettorch.md"' in page
    assert "| hypnettorch," not in page  # no typed copy beside the included one


def test_the_page_prose_holds_on_the_record():
    runs = records()
    assert sorted(r["seed"] for r in runs) == [0, 1, 2]
    for r in runs:
        res = r["results"]
        ref, ours = res["hypnettorch/loop+ours-init"], res["ours/loop"]
        # "per seed the accuracies agree within half a point"
        assert abs(ref["acc"] - ours["acc"]) <= 0.005
        # "ours trains in less CPU time"
        assert ours["train_cpu_s"] < ref["train_cpu_s"]
    # "the gap with hypnettorch's own initialisations"
    mean = lambda name: sum(r["results"][name]["acc"] for r in runs) / len(runs)  # noqa: E731
    for own in ("hypnettorch/loop", "hypnettorch/loop+hyperfan-init"):
        assert mean(own) < mean("hypnettorch/loop+ours-init") - 0.02
