"""The ExStream page quotes its perf records through the tables their scripts write, and the prose holds on them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "perf" / "results"
sys.path.insert(0, str(ROOT / "perf"))

CURVES = ["exstream_memory_curve", "exstream_memory_curve_mixed", "exstream_memory_curve_features"]


def _mean(runs: list[dict], bench: str, buffer: str, k: int) -> float:
    accs = [r["acc"] for r in runs if (r["benchmark"], r["buffer"], r["per_class"]) == (bench, buffer, k)]
    assert len(accs) == 3, (bench, buffer, k)
    return sum(accs) / len(accs)


@pytest.mark.parametrize("name", CURVES)
def test_each_memory_curve_table_is_the_one_its_record_gives_and_the_page_includes_it(name):
    from exstream_memory_curve import table

    record = json.loads((RESULTS / f"{name}.json").read_text())
    assert (RESULTS / f"{name}.md").read_text() == table(record["runs"])
    page = (ROOT / "docs" / "methods" / "exstream.md").read_text()
    assert f'--8<-- "perf/results/{name}.md"' in page


def test_the_throughput_tables_are_the_ones_the_record_gives():
    from exstream_throughput import render

    record = json.loads((RESULTS / "exstream_throughput.json").read_text())
    assert (RESULTS / "exstream_throughput.md").read_text() == render(record)


def test_the_records_show_what_the_page_says_of_the_papers_protocol():
    runs = json.loads((RESULTS / "exstream_memory_curve.json").read_text())["runs"]
    for bench in ("split_mnist5k", "split_fmnist"):
        for k in (2, 5, 10, 20):
            ward = _mean(runs, bench, "exstream_ward", k)
            assert ward > max(_mean(runs, bench, b, k) for b in ("reservoir", "class_balanced")), (bench, k)
        # the paper's L2 rule: ahead of both random buffers at 2 and 5 per class, behind one of them from 10 on
        for k in (2, 5):
            assert _mean(runs, bench, "exstream", k) > _mean(runs, bench, "reservoir", k)
        for k in (10, 20):
            assert _mean(runs, bench, "exstream", k) < max(_mean(runs, bench, b, k) for b in ("reservoir", "class_balanced"))
