"""Leaderboards and the fidelity page: written from committed reports, "not measured" with a command otherwise."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from avalanche_ext.cli import main
from avalanche_ext.leaderboards import REFERENCES, entrants
from avalanche_ext.report.fidelity import fidelity_page, load_references
from avalanche_ext.report.leaderboard import Entrant, leaderboard_page
from avalanche_ext.report.tables import ResultTable

ROOT = Path(__file__).resolve().parents[1]
ENTRANTS = [Entrant("naive", "baseline", ("class", "task")), Entrant("hnet", "regularization", ("class", "task")),
            Entrant("pnn", "architectural", ("task",))]


def _report(folder: Path, runs: dict[tuple[str, str], list[tuple[float, float | None]]]) -> None:
    table = ResultTable("split_mnist5k")
    for (recipe, scenario), accs in runs.items():
        for seed, (acc, inferred) in enumerate(accs):
            table.add(SimpleNamespace(recipe=recipe, scenario=scenario, seed=seed),
                      {"status": "ok", "family": "baseline" if recipe == "naive" else "regularization", "acc": acc,
                       "forgetting": 0.1, "bwt": -0.1, "task_inference_acc": inferred, "train_s": 1.0,
                       "peak_rss_mb": 10.0, "acc_matrix": [[acc]]})
    table.write(folder, "avalanche-ext taxonomy --benchmark split_mnist5k --seeds 3 --out docs/results/split_mnist5k")


def test_leaderboard_ranks_from_the_report_and_names_what_is_not_measured(tmp_path):
    _report(tmp_path / "docs/results/split_mnist5k", {
        ("naive", "class"): [(0.19, None), (0.21, None), (0.20, None)],
        ("hnet", "class"): [(0.60, 0.70), (0.64, 0.74)],
        ("naive", "task"): [(0.95, None)] * 3})
    page = leaderboard_page("split_mnist5k", "docs/results/split_mnist5k", ("class", "task"), ENTRANTS, root=tmp_path)
    class_part, task_part = page.split("## task-incremental")
    assert "| 1 | hnet | regularization | 62.0 ± 2.8 | 10.0 ± 0.0 | 72.0 ± 2.8 | 2 (of 3) |" in class_part
    assert "| 2 | naive | baseline | 20.0 ± 1.0 | 10.0 ± 0.0 | - | 3 |" in class_part
    assert "pnn" not in class_part  # task-IL only
    assert "| - | hnet | regularization | not measured | | | 0 |" in task_part
    assert "| - | pnn | architectural | not measured | | | 0 |" in task_part
    assert ("avalanche-ext taxonomy --benchmark split_mnist5k --seeds 3 --scenarios task --recipes hnet,pnn "
            "--out docs/results/split_mnist5k --resume") in task_part
    assert "[the report](../split_mnist5k/results.md)" in page and "ddof = 1" in page
    # without a report every row is unmeasured, with the command that makes the whole report
    empty = leaderboard_page("split_digits", "docs/results/split_digits", ("class",), ENTRANTS, root=tmp_path)
    assert empty.count("not measured |") == 2 and "| 1 |" not in empty
    assert "avalanche-ext taxonomy --benchmark split_digits --seeds 3 --out docs/results/split_digits --resume" in empty


def _references(tmp_path: Path, refs: list[dict], tolerance: float = 5) -> Path:
    path = tmp_path / "references.yaml"
    path.write_text(yaml.safe_dump({"tolerance": tolerance, "references": refs}))
    return path


REF = {"paper": "A et al. 2020", "table": "table 1", "setting": "MLP"}


def test_fidelity_gap_tolerance_and_unmeasured_rows(tmp_path):
    _report(tmp_path / "docs/results/split_mnist5k", {("naive", "class"): [(0.19, None), (0.21, None)],
                                                       ("naive", "task"): [(0.90, None), (0.90, None)]})
    refs = load_references(_references(tmp_path, [
        {"recipe": "naive", "benchmark": "split_mnist5k", "scenario": "class", "number": 19.71, **REF},
        {"recipe": "naive", "benchmark": "split_mnist5k", "scenario": "task", "number": 97.98, **REF,
         "cause": "measured by perf/x.py"},
        {"recipe": "hnet", "benchmark": "split_mnist5k", "scenario": "class", "number": 69.5, "approximate": True,
         "report": "docs/results/split_mnist5k_online", "flags": "--online", **REF}]))
    page = fidelity_page(refs, ENTRANTS, root=tmp_path)
    assert "**Tolerance: 5 points**" in page
    assert "| split_mnist5k | class-IL | A et al. 2020 | table 1 | MLP | 19.71 | 20.0 ± 1.4 | +0.3 | within tolerance |" \
        in page
    assert "| 97.98 | 90.0 ± 0.0 | -8.0 | beyond tolerance: cause below |" in page
    assert "*split_mnist5k, task-IL*: measured by perf/x.py" in page
    assert "| ~69.5 | not measured |  |  |" in page
    assert ("avalanche-ext taxonomy --benchmark split_mnist5k --seeds 3 --scenarios class --recipes hnet --online "
            "--out docs/results/split_mnist5k_online --resume") in page
    assert "## `pnn` (architectural)\n\nNo published number" in page


@pytest.mark.parametrize("text, match", [
    ({"references": []}, "give `tolerance:`"),
    ({"tolerance": 5, "references": [{"recipe": "naive", "benchmark": "b", "scenario": "class", **REF}]},
     "exactly one of number or claim"),
    ({"tolerance": 5, "references": [{"recipe": "naive", "benchmark": "b", "scenario": "class", "number": 1,
                                      "tabel": "x", **REF}]}, r"unknown \['tabel'\]"),
])
def test_a_malformed_reference_file_is_refused(tmp_path, text, match):
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(text))
    with pytest.raises(ValueError, match=match):
        load_references(tmp_path / "r.yaml")


def test_the_committed_reference_file_loads_and_names_registered_recipes():
    refs = load_references(ROOT / REFERENCES)["references"]
    names = {e.name for e in entrants()}
    assert {r["recipe"] for r in refs} <= names
    assert {"naive", "replay", "generative_replay", "mir", "agem", "pnn", "packnet", "hnet", "supsup"} <= {
        r["recipe"] for r in refs}


def test_cli_writes_every_leaderboard_and_the_fidelity_page(tmp_path, capsys):
    _report(tmp_path / "docs/results/split_mnist5k", {("naive", "class"): [(0.2, None)] * 3})
    (tmp_path / "docs/results/references.yaml").write_text((ROOT / "docs/results/references.yaml").read_text())
    assert main(["leaderboard", "--root", str(tmp_path)]) == 0
    pages = sorted(p.name for p in (tmp_path / "docs/results/leaderboards").iterdir())
    assert pages == ["permuted_mnist5k.md", "split_digits.md", "split_fmnist.md", "split_mnist5k.md"]
    board = (tmp_path / "docs/results/leaderboards/split_mnist5k.md").read_text()
    assert "| 1 | naive | baseline | 20.0 ± 0.0 |" in board
    assert board.count("| not measured |") == sum(len(e.scenarios) for e in entrants()) - 1  # all but naive/class
    assert "settings selected on `split_mnist5k`" in (tmp_path / "docs/results/leaderboards/split_fmnist.md").read_text()
    assert "| 19.71 | 20.0 ± 0.0 | +0.3 | within tolerance |" in (tmp_path / "docs/results/fidelity.md").read_text()
