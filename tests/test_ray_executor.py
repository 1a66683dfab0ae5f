"""The Ray executor on a local 2-CPU Ray instance: same numbers as serial, each run in MLflow once, retries."""

import pytest
import ray
from mlflow.tracking import MlflowClient

from avalanche_ext.executors import RayUnavailableError, run_ray, run_serial
from avalanche_ext.logging import resolve_tracking_uri
from avalanche_ext.runner import RunConfig
from avalanche_ext.taxonomy import TaxonomyConfig, run_taxonomy

pytestmark = pytest.mark.slow  # starts a Ray instance and real runs: `make test-slow`, which CI runs


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def jobs(uri, experiment, ckpt_dir):
    return [RunConfig(recipe, benchmark="split_digits", scenario="class", seed=seed, n_experiences=3, epochs=1,
                      tracking_uri=uri, experiment=experiment, progress=False, checkpoint_dir=str(ckpt_dir))
            for recipe, seed in (("naive", 0), ("replay", 0), ("ewc", 1))]


def test_ray_matches_serial_logs_each_run_once_and_retries_failures(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    serial = {}
    run_serial(jobs(uri, "serial", tmp_path / "a"), lambda job, r: serial.__setitem__(job.recipe, r))

    ray_jobs = jobs(uri, "ray", tmp_path / "b")
    ray_jobs[1].kill_after = 2  # its worker dies by SIGKILL after experience 2; the retry resumes it
    broken = RunConfig("progress_compress", benchmark="split_digits", scenario="class", n_experiences=3, epochs=1,
                       tracking_uri=uri, experiment="ray", progress=False, overrides={"adaptor_width": -1})
    results = {}
    run_ray(ray_jobs + [broken], lambda job, r: results.__setitem__(job.recipe, r), cpus_per_task=1)

    assert set(results) == {"naive", "replay", "ewc", "progress_compress"}
    for name in ("naive", "replay", "ewc"):
        assert results[name]["status"] == "ok", results[name]
        assert results[name]["acc_matrix"] == serial[name]["acc_matrix"], name
    assert results["naive"]["attempts"] == 1
    assert results["replay"]["attempts"] == 2 and results["replay"]["resumed_from_step"] == 2
    assert results["progress_compress"]["status"] == "failed" and results["progress_compress"]["attempts"] == 2
    assert "adaptor_width must be >= 0" in results["progress_compress"]["error"]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("ray").experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(r.data.tags["recipe"] for r in finished) == ["ewc", "naive", "replay"], "each run exactly once"
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert [r.data.tags["recipe"] for r in failed] == ["progress_compress"] * 2, "one failed MLflow run per attempt"


def test_taxonomy_on_ray_writes_the_report_with_nested_runs(local_ray, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    table = run_taxonomy(TaxonomyConfig(benchmark="split_digits", recipes=["naive", "si"], scenarios=["class"],
                                        seeds=1, n_experiences=2, epochs=1, tracking_uri=uri, log_model=False,
                                        out=str(tmp_path / "report"), executor="ray"))
    assert table.all_ok and len(table.rows) == 2
    assert (tmp_path / "report" / "results.md").is_file()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "taxonomy"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)


def test_bad_ray_settings_are_refused_before_anything_runs(monkeypatch):
    with pytest.raises(ValueError, match="--cpus-per-task must be >= 1"):
        run_ray([], lambda job, r: None, cpus_per_task=0)
    assert resolve_tracking_uri("sqlite:///m.db").startswith("sqlite:////")
    assert resolve_tracking_uri("http://host:5000") == "http://host:5000"


def test_an_unreachable_cluster_is_a_clear_error(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(RayUnavailableError, match="cannot start or reach Ray at 10.0.0.1:6379: connection refused"):
        run_ray([RunConfig("naive")], lambda job, r: None, address="10.0.0.1:6379")
