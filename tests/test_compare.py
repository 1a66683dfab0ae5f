"""``avalanche-ext compare``: two taxonomy reports side by side."""

import json

import pytest

from avalanche_ext.cli import main
from avalanche_ext.report.compare import compare_reports


def _report(folder, benchmark, accs):
    folder.mkdir()
    aggregate = [{"recipe": r, "family": "baseline", "scenario": "class", "acc_mean": a, "acc_std": 0.01,
                  "forgetting_mean": 0.1, "forgetting_std": 0.0} for r, a in accs.items()]
    (folder / "summary.json").write_text(json.dumps({"benchmark": benchmark, "command": f"taxonomy {folder.name}",
                                                     "aggregate": aggregate}))
    return folder


def test_difference_per_recipe_and_only_shared_pairs(tmp_path):
    a = _report(tmp_path / "scratch", "split_fmnist", {"naive": 0.20, "replay": 0.70, "ewc": 0.19})
    b = _report(tmp_path / "pretrained", "split_fmnist", {"naive": 0.25, "replay": 0.80})
    path = compare_reports(a, b, label_a="scratch", label_b="pretrained", out=tmp_path / "cmp")
    text = path.read_text()
    assert "| replay | 70.0 ± 1.0 | 80.0 ± 1.0 | +10.0 |" in text
    assert "| naive | 20.0 ± 1.0 | 25.0 ± 1.0 | +5.0 |" in text
    assert text.index("| replay |") < text.index("| naive |")  # largest gain first
    assert "| ewc |" not in text  # only in one report
    assert "taxonomy scratch" in text and "taxonomy pretrained" in text
    assert (tmp_path / "cmp" / "comparison_class.png").stat().st_size > 1000


def test_refuses_reports_of_different_benchmarks_or_missing_folders(tmp_path):
    a = _report(tmp_path / "a", "split_fmnist", {"naive": 0.2})
    b = _report(tmp_path / "b", "split_mnist5k", {"naive": 0.2})
    with pytest.raises(ValueError, match="different benchmarks"):
        compare_reports(a, b, label_a="a", label_b="b", out=tmp_path / "cmp")
    assert main(["compare", str(a), str(tmp_path / "nowhere"), "--out", str(tmp_path / "cmp")]) != 0
