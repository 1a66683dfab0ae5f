"""A taxonomy run writes the report and one nested MLflow run per recipe, scenario and seed."""

import csv
import json

from mlflow.tracking import MlflowClient

from avalanche_ext.taxonomy import TaxonomyConfig, plan, run_taxonomy


def _cfg(tmp_path, uri, **kw):
    return TaxonomyConfig(benchmark="split_digits", recipes=["naive", "multihead"], n_experiences=2, epochs=1,
                          tracking_uri=uri, out=str(tmp_path / "report"), **kw)


def test_plan_skips_unsupported_scenarios_with_reason(tmp_path, tracking_uri):
    jobs, skipped = plan(_cfg(tmp_path, tracking_uri, seeds=2))
    assert sorted((j.recipe, j.scenario, j.seed) for j in jobs) == sorted(
        [("naive", s, seed) for s in ("class", "task", "domain") for seed in (0, 1)]
        + [("multihead", "task", 0), ("multihead", "task", 1)])
    assert {(s["recipe"], s["scenario"]) for s in skipped} == {("multihead", "class"), ("multihead", "domain")}
    assert all("supports task only" in s["reason"] for s in skipped)


def test_taxonomy_report_and_nested_runs(tmp_path, tracking_uri):
    table = run_taxonomy(_cfg(tmp_path, tracking_uri, executor="serial"))
    assert table.all_ok and len(table.rows) == 4
    out = tmp_path / "report"
    for name in ("results.csv", "results.md", "summary.json", "chart_class.png", "chart_task.png",
                 "chart_domain.png", "heatmaps/task_multihead.png", "recipes/naive.md"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 4 and all(0 <= float(r["acc"]) <= 1 for r in rows)
    md = (out / "results.md").read_text()
    assert "## task-incremental" in md and "| multihead | architectural |" in md and "## Skipped" in md
    summary = json.loads((out / "summary.json").read_text())
    naive_task = next(a for a in summary["aggregate"] if a["recipe"] == "naive" and a["scenario"] == "task")
    assert naive_task["time_vs_naive"] == 1.0
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "taxonomy"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert "report/results.md" in artifacts


def test_process_pool_matches_serial(tmp_path, tracking_uri):
    serial = run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["class"],
                                         n_experiences=2, epochs=1, tracking_uri=tracking_uri,
                                         out=str(tmp_path / "a"), executor="serial"))
    pool = run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["class"],
                                       n_experiences=2, epochs=1, tracking_uri=tracking_uri,
                                       out=str(tmp_path / "b"), executor="process", workers=1))
    assert [r["acc"] for r in serial.rows] == [r["acc"] for r in pool.rows]
    assert serial.matrices == pool.matrices


def test_a_worker_killed_mid_run_is_resumed_from_its_checkpoint(tmp_path, tracking_uri, monkeypatch):
    """Every run's worker dies by SIGKILL after experience 2; the retry resumes it, the numbers stay exact."""
    import avalanche_ext.taxonomy as taxonomy

    def cfg(out, executor):
        return TaxonomyConfig(benchmark="split_digits", recipes=["replay", "si"], scenarios=["class"],
                              n_experiences=3, epochs=1, tracking_uri=tracking_uri, out=str(tmp_path / out),
                              executor=executor, workers=2)

    straight = run_taxonomy(cfg("straight", "serial"))
    real_plan = taxonomy.plan

    def killing_plan(c):
        jobs, skipped = real_plan(c)
        for job in jobs:
            job.kill_after = 2
        return jobs, skipped

    monkeypatch.setattr(taxonomy, "plan", killing_plan)
    killed = run_taxonomy(cfg("killed", "process"))
    assert killed.all_ok and killed.matrices == straight.matrices
    rows = list(csv.DictReader(open(tmp_path / "killed" / "results.csv")))
    assert {r["recipe"] for r in rows} == {"replay", "si"}
    client = MlflowClient(tracking_uri)
    runs = [client.get_run(r["mlflow_run_id"]) for r in rows]
    assert all(run.info.status == "FINISHED" for run in runs)
    # The first worker to die resumes after step 2. Its death breaks the pool, which takes the
    # other worker down wherever it was: that run resumes from its last checkpoint (or restarts
    # if it had none); either way, resumed runs reach the uninterrupted numbers above.
    resumed = [run.data.tags.get("resumed_from_step") for run in runs]
    assert "2" in resumed and all(step in (None, "1", "2") for step in resumed)
    assert not list((tmp_path / "killed" / "checkpoints").glob("*.ckpt"))


def test_resume_reuses_finished_runs_and_refuses_other_settings(tmp_path, tracking_uri):
    import pytest

    first = run_taxonomy(_cfg(tmp_path, tracking_uri, executor="serial", scenarios=["task"]))
    # A second call with one more recipe runs only what is new.
    cfg = TaxonomyConfig(benchmark="split_digits", recipes=["naive", "multihead", "ewc"], scenarios=["task"],
                         n_experiences=2, epochs=1, tracking_uri=tracking_uri, out=str(tmp_path / "report"),
                         executor="serial", resume=True)
    jobs, _ = plan(cfg)
    second = run_taxonomy(cfg)
    assert len(second.rows) == 3
    reused = {r["recipe"]: r["mlflow_run_id"] for r in second.rows}
    assert reused["naive"] == next(r["mlflow_run_id"] for r in first.rows if r["recipe"] == "naive")
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id],
                              filter_string="tags.recipe = 'naive'")
    assert len(runs) == 1  # naive was not run again
    with pytest.raises(ValueError, match="other settings"):
        run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["task"], n_experiences=2,
                                    epochs=2, tracking_uri=tracking_uri, out=str(tmp_path / "report"),
                                    executor="serial", resume=True))


def test_resume_keeps_the_rest_of_the_report_and_reruns_changed_hyper_parameters(tmp_path, tracking_uri):
    first = run_taxonomy(_cfg(tmp_path, tracking_uri, executor="serial", scenarios=["task"]))
    ids = {r["recipe"]: r["mlflow_run_id"] for r in first.rows}
    summary_path = tmp_path / "report" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["hparams"]["naive/task"]["lr"] = 0.5  # as if naive's settings had been selected anew since
    summary_path.write_text(json.dumps(summary))
    second = run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["task"],
                                         n_experiences=2, epochs=1, tracking_uri=tracking_uri,
                                         out=str(tmp_path / "report"), executor="serial", resume=True))
    again = {r["recipe"]: r["mlflow_run_id"] for r in second.rows}
    assert again["multihead"] == ids["multihead"]  # not planned this time: kept in the report
    assert again["naive"] != ids["naive"]  # other hyper-parameters: run again
    rows = list(csv.DictReader(open(tmp_path / "report" / "results.csv")))
    assert sorted(r["recipe"] for r in rows) == ["multihead", "naive"]
    assert json.loads(summary_path.read_text())["hparams"]["naive/task"]["lr"] != 0.5


def test_resume_starts_again_a_run_whose_checkpoint_has_other_settings_and_ends_the_old_run(tmp_path, tracking_uri):
    """An interrupted taxonomy left a checkpoint; the recipe's settings changed since (a new selection):
    --resume runs that pair afresh instead of failing on the checkpoint, and ends the old run KILLED."""
    from avalanche_ext.runner import RunConfig, run

    out = tmp_path / "report"
    old = run(RunConfig("naive", benchmark="split_digits", scenario="task", n_experiences=2, epochs=1,
                        tracking_uri=tracking_uri, checkpoint_dir=str(out / "checkpoints"), stop_after=1,
                        progress=False, log_model=False, overrides={"lr": 0.01}))
    MlflowClient(tracking_uri).update_run(old["mlflow_run_id"], status="RUNNING")  # as an interrupted worker leaves it
    table = run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["task"],
                                        n_experiences=2, epochs=1, tracking_uri=tracking_uri, out=str(out),
                                        executor="serial", resume=True))
    assert table.all_ok and len(table.rows) == 1
    client = MlflowClient(tracking_uri)
    ended = client.get_run(old["mlflow_run_id"])
    assert ended.info.status == "KILLED" and "other settings" in ended.data.tags["killed_reason"]


def test_a_killed_report_keeps_its_finished_runs_and_resume_runs_only_the_rest(tmp_path, tracking_uri, monkeypatch):
    import pytest

    from avalanche_ext import taxonomy
    from avalanche_ext.report.partial import PARTIAL_FILE

    calls = []

    def dispatch(stop_after):
        def fake(jobs, on_result, *args, **kwargs):
            for job in jobs:
                if stop_after is not None and len(calls) >= stop_after:
                    raise KeyboardInterrupt  # as a killed command would
                calls.append((job.recipe, job.scenario, job.seed))
                acc = 0.5 + 0.1 * len(calls)
                on_result(job, {"status": "ok", "acc": acc, "forgetting": 0.1, "bwt": -0.1, "train_s": 1.0,
                                "peak_rss_mb": 10.0, "mlflow_run_id": f"run-{len(calls)}", "acc_matrix": [[acc]],
                                "task_inference_acc": None})
        return fake

    cfg = dict(scenarios=["task"], seeds=2, executor="serial")
    monkeypatch.setattr(taxonomy, "dispatch", dispatch(stop_after=3))
    with pytest.raises(KeyboardInterrupt):
        run_taxonomy(_cfg(tmp_path, tracking_uri, **cfg))
    partial = tmp_path / "report" / PARTIAL_FILE
    assert len(list(csv.DictReader(open(partial)))) == 3 and not (tmp_path / "report" / "results.csv").exists()
    killed = list(calls)
    monkeypatch.setattr(taxonomy, "dispatch", dispatch(stop_after=None))
    table = run_taxonomy(_cfg(tmp_path, tracking_uri, resume=True, **cfg))
    assert calls[3:] == [("multihead", "task", 1)]  # only the run the kill cut off
    rows = {(r["recipe"], r["scenario"], int(r["seed"])): r["mlflow_run_id"]
            for r in csv.DictReader(open(tmp_path / "report" / "results.csv"))}
    assert rows == {k: f"run-{i}" for i, k in enumerate(killed + calls[3:], 1)} and len(table.rows) == 4
    assert not partial.exists()  # results.csv holds every run now
    # Without --resume a report starts afresh: the runs of an unfinished one are not reused.
    monkeypatch.setattr(taxonomy, "dispatch", dispatch(stop_after=5))
    with pytest.raises(KeyboardInterrupt):
        run_taxonomy(_cfg(tmp_path, tracking_uri, **cfg))
    assert [r["mlflow_run_id"] for r in csv.DictReader(open(partial))] == ["run-5"]
