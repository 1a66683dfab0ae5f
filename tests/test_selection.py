"""``avalanche-ext select``: the same budget for every recipe, records, the selected-settings file, resume.

The runs are replaced by a fake executor whose validation accuracy is a known function of the
configuration (the real pipeline runs in test_results_pipeline.py).
"""

from __future__ import annotations

import csv
import json
import re

import pytest

import avalanche_ext.selection as selection
from avalanche_ext.cli import main
from avalanche_ext.recipe import GRID_SIZE
from avalanche_ext.selection import SelectConfig, plan, run_select

#: validation accuracy of the fake runs: best at lr=3e-3 for naive, ewc_lambda=1e4 for ewc; seed 1 a little lower
SCORES = {("naive", 3e-4): 0.50, ("naive", 1e-3): 0.60, ("naive", 3e-3): 0.70, ("naive", 1e-2): 0.40}


def _acc(job) -> float:
    if job.recipe == "naive":
        base = SCORES[("naive", job.overrides["lr"])]
    else:
        base = 0.5 + (0.1 if job.overrides["ewc_lambda"] == 1e4 else 0.0)
    return base - 0.02 * job.seed


class FakeExecutor:
    """Stands in for :func:`~avalanche_ext.executors.dispatch`; ``stop_after`` runs, it raises as a killed
    command would."""

    def __init__(self, stop_after=None, fail=()):
        self.calls, self.stop_after, self.fail = [], stop_after, set(fail)

    def __call__(self, jobs, on_result, *args, **kwargs):
        for job in jobs:
            if self.stop_after is not None and len(self.calls) >= self.stop_after:
                raise KeyboardInterrupt
            self.calls.append((job.recipe, job.scenario, job.seed, dict(job.overrides)))
            if (job.recipe, job.overrides.get("lr")) in self.fail:
                on_result(job, {"status": "failed", "error": "boom"})
            else:
                on_result(job, {"status": "ok", "acc": _acc(job), "task_inference_acc": None, "train_s": 1.0,
                                "mlflow_run_id": f"run-{len(self.calls)}"})


def _cfg(tmp_path, **kw):
    args = dict(benchmark="split_digits", recipes=["naive", "ewc"], scenarios=["class", "task"], seeds=2,
                out=str(tmp_path / "val"), selected_file=str(tmp_path / "selected.json"),
                checkpoint_root=str(tmp_path / "ckpt"), tracking_uri=f"sqlite:///{tmp_path}/m.db")
    return SelectConfig(**{**args, **kw})


def test_every_recipe_gets_the_same_budget_on_the_validation_split(tmp_path):
    jobs, pairs = plan(_cfg(tmp_path, recipes=["naive", "ewc", "multihead"], scenarios=None))
    assert {(r.name, s) for r, s in pairs} == {("naive", s) for s in ("class", "task", "domain")} | {
        ("ewc", s) for s in ("class", "task", "domain")} | {("multihead", "task")}
    per_pair = {}
    for job in jobs:
        per_pair.setdefault((job.recipe, job.scenario), []).append(job)
        assert job.validation and job.checkpoint_dir.startswith(str(tmp_path / "ckpt"))
    assert {len(v) for v in per_pair.values()} == {GRID_SIZE * 2}
    # each configuration its own checkpoint folder: two configurations never share a file
    assert len({j.checkpoint_dir for j in per_pair[("naive", "class")]}) == GRID_SIZE


def test_benchmarks_that_reuse_selections_and_searched_overrides_are_refused(tmp_path):
    with pytest.raises(ValueError, match="reuses the selections of split_mnist5k"):
        plan(_cfg(tmp_path, benchmark="split_fmnist"))
    with pytest.raises(ValueError, match="searches them in its grid"):
        plan(_cfg(tmp_path, overrides={"lr": "0.1"}))


def test_records_and_selected_settings(tmp_path, monkeypatch, capsys):
    fake = FakeExecutor()
    monkeypatch.setattr(selection, "dispatch", fake)
    (tmp_path / "selected.json").write_text(json.dumps({"lwf": {"split_digits/task": {"settings": {"alpha": 2.0}}}}))
    summaries = run_select(_cfg(tmp_path, command="avalanche-ext select --benchmark split_digits"))
    assert len(fake.calls) == 2 * 2 * GRID_SIZE * 2
    assert "4 configurations x 2 seed(s) in each of 2 scenario(s)" in capsys.readouterr().err
    chosen = json.loads((tmp_path / "selected.json").read_text())
    assert chosen["naive"]["split_digits/class"]["settings"] == {"lr": 3e-3}
    assert chosen["ewc"]["split_digits/task"]["settings"] == {"ewc_lambda": 1e4}
    assert chosen["naive"]["split_digits/task"]["val_acc"] == pytest.approx(0.69)
    assert chosen["naive"]["split_digits/task"]["seeds"] == 2
    assert chosen["lwf"] == {"split_digits/task": {"settings": {"alpha": 2.0}}}  # other entries are kept
    record = (tmp_path / "val" / "split_digits" / "naive_class.md").read_text()
    assert chosen["naive"]["split_digits/class"]["record"] == str(tmp_path / "val" / "split_digits" / "naive_class.md")
    assert "avalanche-ext select --benchmark split_digits" in record and "ddof = 1" in record
    assert "| 0.001 | 59.00 ± 1.41 | 2 | current |" in record  # the current settings first, sample std
    assert "| 0.003 | 69.00 ± 1.41 | 2 | **chosen** |" in record
    assert {s["recipe"] for s in summaries} == {"naive", "ewc"}


def test_an_interrupted_selection_resumes_with_the_runs_it_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "dispatch", FakeExecutor(stop_after=5))
    with pytest.raises(KeyboardInterrupt):
        run_select(_cfg(tmp_path))
    rows = list(csv.DictReader(open(tmp_path / "val" / "split_digits" / "runs.csv")))
    assert len(rows) == 5  # every finished run was written as it ended
    second = FakeExecutor()
    monkeypatch.setattr(selection, "dispatch", second)
    run_select(_cfg(tmp_path, resume=True))
    assert len(second.calls) == 2 * 2 * GRID_SIZE * 2 - 5
    assert json.loads((tmp_path / "selected.json").read_text())["naive"]["split_digits/class"]["settings"] == {
        "lr": 3e-3}
    third = FakeExecutor()
    monkeypatch.setattr(selection, "dispatch", third)
    run_select(_cfg(tmp_path, resume=True, recipes=["naive"]))
    assert third.calls == []  # nothing left to run
    run_select(_cfg(tmp_path, resume=True, recipes=["naive"], epochs=1))
    assert len(third.calls) == 2 * GRID_SIZE * 2  # other settings: the earlier runs do not count
    fourth = FakeExecutor()
    monkeypatch.setattr(selection, "dispatch", fourth)
    run_select(_cfg(tmp_path, recipes=["naive"], scenarios=["class"]))
    assert len(fourth.calls) == GRID_SIZE * 2  # without resume, the pair runs again
    # a recipe default that changed since: its runs do not count either
    from avalanche_ext.recipe import Recipe

    unselected = Recipe.unselected
    monkeypatch.setattr(Recipe, "unselected", lambda self, *a, **k: {**unselected(self, *a, **k), "hidden": 7})
    fifth = FakeExecutor()
    monkeypatch.setattr(selection, "dispatch", fifth)
    run_select(_cfg(tmp_path, resume=True, recipes=["naive"], scenarios=["class"]))
    assert len(fifth.calls) == GRID_SIZE * 2


def test_a_configuration_with_a_failed_run_is_never_chosen(tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "dispatch", FakeExecutor(fail={("naive", 3e-3)}))
    summaries = run_select(_cfg(tmp_path, recipes=["naive"], scenarios=["class"]))
    assert json.loads((tmp_path / "selected.json").read_text())["naive"]["split_digits/class"]["settings"] == {
        "lr": 1e-3}
    record = (tmp_path / "val" / "split_digits" / "naive_class.md").read_text()
    assert "| 0.003 | - | 0 (2 failed) |" in record
    assert summaries[0]["rows"][summaries[0]["best"]]["lr"] == 1e-3


def test_cli_select_and_list_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(selection, "dispatch", FakeExecutor())
    out, chosen = tmp_path / "val", tmp_path / "selected.json"
    assert main(["select", "--benchmark", "split_digits", "--recipes", "naive", "--scenarios", "task", "--seeds", "1",
                 "--out", str(out), "--selected-file", str(chosen), "--checkpoint-dir", str(tmp_path / "ck"),
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 0
    assert "naive" in capsys.readouterr().out
    monkeypatch.setenv("AVALANCHE_EXT_SELECTED", str(chosen))
    from avalanche_ext import registry

    registry.apply_selected_settings()
    try:
        assert main(["list", "--settings"]) == 0
        text = capsys.readouterr().out
        assert "naive: grid lr [0.0003, 0.001, 0.003, 0.01]" in text
        assert re.search(rf"split_digits/task +lr=0.003 +\(record: {out}/split_digits/naive_task.md\)", text)
    finally:
        monkeypatch.delenv("AVALANCHE_EXT_SELECTED")
        registry.apply_selected_settings()
    assert main(["select", "--benchmark", "permuted_fmnist"]) == 2


def test_the_selection_page_states_the_seeds_each_benchmark_was_searched_with():
    from avalanche_ext.report.selection import selection_page

    entry = {"settings": {"lr": 0.001}, "val_acc": 0.9}
    selected = {"naive": {"split_digits/class": {**entry, "seeds": 2}, "split_mnist5k/class": {**entry, "seeds": 1}},
                "ewc": {"split_digits/class": {**entry, "seeds": 2}, "split_mnist5k/class": entry}}
    page = selection_page(selected, ["split_digits", "split_mnist5k"], "docs/results/selection.md")
    assert "2 recipe/scenario pairs, each configuration run with 2 seeds." in page
    assert "each configuration run with 1 seed (and the seeds older records give)." in page
