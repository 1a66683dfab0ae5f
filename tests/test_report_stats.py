"""One spread convention everywhere: mean ± sample standard deviation (ddof = 1) over seeds."""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from avalanche_ext.report.compare import compare_reports
from avalanche_ext.report.stats import STD_CONVENTION, fmt, mean_std, welch_p
from avalanche_ext.report.tables import ResultTable

ROOT = Path(__file__).resolve().parents[1]


def test_mean_std_is_the_sample_std_and_skips_missing_values():
    mean, std = mean_std([0.5, 0.7, 0.9, None, float("nan")])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(0.2)  # sqrt(0.08 / 2); the population std would be 0.163
    assert math.isnan(mean_std([0.5])[1]) and math.isnan(mean_std([])[0])
    assert fmt(0.7, 0.2) == "70.0 ± 20.0" and fmt(0.5, float("nan")) == "50.0" and fmt(float("nan"), 0.1) == "-"


def _table(accs: list[float]) -> ResultTable:
    table = ResultTable("split_digits")
    for seed, acc in enumerate(accs):
        table.add(SimpleNamespace(recipe="naive", scenario="class", seed=seed),
                  {"status": "ok", "family": "baseline", "acc": acc, "forgetting": 0.1, "bwt": -0.1,
                   "train_s": 1.0, "peak_rss_mb": 10.0, "acc_matrix": [[acc]]})
    return table


def test_report_tables_state_and_use_the_sample_std(tmp_path):
    table = _table([0.5, 0.7, 0.9])
    (agg,) = table.aggregate()
    assert agg["acc_std"] == pytest.approx(0.2)
    text = table.markdown()
    assert "| naive | baseline | 70.0 ± 20.0 |" in text and STD_CONVENTION in text
    table.write(tmp_path / "a", "taxonomy a")
    # a report read back computes its spread again from results.csv, whatever summary.json holds
    reread = ResultTable.load(tmp_path / "a").aggregate()[0]
    assert reread["acc_std"] == pytest.approx(0.2)
    _table([0.6, 0.8]).write(tmp_path / "b", "taxonomy b")
    cmp = compare_reports(tmp_path / "a", tmp_path / "b", label_a="a", label_b="b", out=tmp_path / "cmp").read_text()
    assert "| naive | 70.0 ± 20.0 | 70.0 ± 14.1 |" in cmp and STD_CONVENTION in cmp


def test_no_other_std_in_the_library_or_perf_scripts():
    """A population std (np.std without ddof, statistics.pstdev) or a second helper would split the convention."""
    pattern = re.compile(r"np\.std\(|numpy\.std\(|statistics\.(p?stdev|pvariance)|\bpstdev\(")
    offenders = []
    for folder in ("avalanche_ext", "avalanche_ext_recipes", "perf"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "stats.py" and path.parent.name == "report":
                continue
            offenders += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                          if pattern.search(line)]
    assert offenders == [], f"use avalanche_ext.report.stats.mean_std instead: {offenders}"


def test_welch_p_tells_a_gap_from_seed_noise():
    assert welch_p([0.90, 0.92, 0.94], [0.80, 0.82, 0.84]) < 0.01
    assert welch_p([0.90, 0.80, 0.95], [0.91, 0.83, 0.93]) > 0.5
    assert math.isnan(welch_p([0.9], [0.8, 0.7])) and math.isnan(welch_p([0.9, 0.9], [0.8, 0.8]))


def test_a_row_below_naive_within_seed_noise_says_so_and_a_significant_one_asks_for_a_note(tmp_path):
    table = _table([0.90, 0.80, 0.95])
    for recipe, accs in (("si", [0.91, 0.78, 0.93]), ("lwf", [0.50, 0.52, 0.51])):
        for seed, acc in enumerate(accs):
            table.add(SimpleNamespace(recipe=recipe, scenario="class", seed=seed),
                      {"status": "ok", "family": "regularization", "acc": acc, "forgetting": 0.1, "bwt": -0.1,
                       "train_s": 1.0, "peak_rss_mb": 10.0, "acc_matrix": [[acc]]})
    (tmp_path / "r").mkdir()
    table.write(tmp_path / "r", "taxonomy r")
    text = (tmp_path / "r" / "results.md").read_text()
    assert "- `si`: not distinguishable from `naive` over these seeds (87.3 ± 8.1 against 88.3 ± 7.6; " \
           "Welch's t-test p = 0.88 over 3 and 3 seeds)" in text
    assert "- `lwf`: no note yet (add `lwf/class` to notes.json) (51.0 ± 1.0 against 88.3 ± 7.6; " \
           "Welch's t-test p = 0.01 over 3 and 3 seeds)" in text


def test_rows_below_naive_show_their_note_or_ask_for_one(tmp_path):
    table = _table([0.6, 0.6])
    for seed, (recipe, acc) in enumerate([("ewc", 0.4), ("lwf", 0.5), ("replay", 0.9)]):
        table.add(SimpleNamespace(recipe=recipe, scenario="class", seed=seed),
                  {"status": "ok", "family": "regularization" if recipe != "replay" else "replay", "acc": acc,
                   "forgetting": 0.1, "bwt": -0.1, "train_s": 1.0, "peak_rss_mb": 10.0, "acc_matrix": [[acc]]})
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.json").write_text('{"ewc/class": "one sentence of why"}')
    table.write(tmp_path / "r", "taxonomy r")
    text = (tmp_path / "r" / "results.md").read_text()
    assert "- `ewc`: one sentence of why (40.0 against 60.0 ± 0.0)" in text  # one seed: no test
    assert "- `lwf`: no note yet (add `lwf/class` to notes.json)" in text
    assert "`replay`:" not in text  # above naive: no note needed
    (tmp_path / "r" / "notes.json").write_text('{"ewc": "no scenario"}')
    with pytest.raises(ValueError, match="notes map 'recipe/scenario' to a sentence"):
        ResultTable.load(tmp_path / "r")
