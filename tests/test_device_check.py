"""perf/device_check.py in its small sizes on the CPU: the accuracy beside the CPU report, the cost per
recipe relative to naive, memory n/a off CUDA, and recipes that cannot use the backbone listed with the reason."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def device_check():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "perf" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(text, heading):
    """The rows of the Markdown table under the section whose title starts with ``heading``, as dicts."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


@pytest.mark.slow
def test_the_small_check_writes_accuracy_beside_the_cpu_report_and_costs_relative_to_naive(device_check, tmp_path,
                                                                                            monkeypatch):
    monkeypatch.setattr(device_check, "RESULTS", tmp_path)
    assert device_check.main(["--device", "cpu", "--arch", "cnn", "--recipes", "replay,ewc", "--threads", "1"]) == 0
    text = (tmp_path / "device_check_cpu_small.md").read_text()  # the CPU picks the small sizes itself

    (acc,) = table(text, "Accuracy")
    report = device_check.cpu_report()[("naive", "class")]
    assert (acc["recipe"], acc["scenario"]) == ("naive", "class")
    assert float(acc["acc CPU report"]) == pytest.approx(report, abs=5e-4)
    assert acc["acc here"] == acc["acc CPU report"] and acc["difference"] == "+0.000", "the CPU repeats its report"

    cost = table(text, "Training cost on cnn")
    assert [r["recipe"] for r in cost] == ["naive", "replay", "ewc"]
    assert cost[0]["x naive"] == "1.00"
    for row in cost:
        assert float(row["ms/step"]) > 0 and float(row["samples/s"]) > 0 and float(row["x naive"]) > 0, row
        assert row["peak memory (MiB)"] == "n/a" and row["note"] == "", row
    ratio = float(cost[1]["ms/step"]) / float(cost[0]["ms/step"])
    assert float(cost[1]["x naive"]) == pytest.approx(ratio, abs=0.01)


def test_a_recipe_that_cannot_build_the_backbone_is_listed_with_the_reason(device_check, tmp_path):
    out = tmp_path / "check.md"
    assert device_check.main(["--small", "--device", "cpu", "--skip-accuracy", "--arch", "nosuch",
                              "--recipes", "ewc", "--out", str(out)]) == 0
    rows = table(out.read_text(), "Training cost on nosuch")
    assert [r["recipe"] for r in rows] == ["naive", "ewc"]
    for row in rows:
        assert row["ms/step"] == row["x naive"] == "-" and "nosuch" in row["note"], row
