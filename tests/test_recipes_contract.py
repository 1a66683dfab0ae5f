"""Every registered recipe trains on a tiny stream and logs to MLflow (determinism: test_checkpoint.py)."""

import math

import pytest
from mlflow.tracking import MlflowClient

from avalanche_ext.benchmarks import get_spec
from avalanche_ext.hparams import HParamError
from avalanche_ext.recipe import FAMILIES
from avalanche_ext.registry import _RECIPES, all_recipes, get_recipe, register
from avalanche_ext.runner import RunConfig, default_scenario, run

RECIPES = all_recipes()


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory):
    """One MLflow store for the module: creating a SQLite store costs seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def test_registry_is_complete_and_well_formed():
    names = {r.name for r in RECIPES}
    required = {"naive", "joint", "cumulative", "replay", "gdumb", "mir", "generative_replay", "lwf", "ewc",
                "online_ewc", "si", "multihead", "cwr_star", "pnn", "packnet", "gem", "agem", "icarl"}
    assert required <= names, f"missing recipes: {required - names}"
    for r in RECIPES:
        assert r.family in FAMILIES and r.paper and r.summary
        assert r.scenarios and set(r.scenarios) <= {"class", "task", "domain"}
        r.resolve("split_digits")  # defaults type-check


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_recipe_contract(recipe, shared_uri):
    tracking_uri = shared_uri
    scenario = default_scenario(recipe, get_spec("split_digits"))
    cfg = RunConfig(recipe.name, benchmark="split_digits", scenario=scenario, seed=0, n_experiences=2, epochs=1,
                    tracking_uri=tracking_uri, progress=False)
    res = run(cfg)
    matrix = res["acc_matrix"]
    assert len(matrix) == (1 if recipe.trains_once else 2) and all(len(row) == 2 for row in matrix)
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row)
    assert 0.0 <= res["acc"] <= 1.0 and math.isfinite(res["forgetting"]) and math.isfinite(res["bwt"])
    assert res["train_s"] > 0 and res["peak_rss_mb"] > 0
    # Same seed, same numbers: tests/test_checkpoint.py runs every recipe twice with seed 0.
    # Tracked in MLflow: finished, with parameters, per-step metrics and the matrix.
    client = MlflowClient(tracking_uri)
    mlrun = client.get_run(res["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["recipe"] == recipe.name and mlrun.data.params["scenario"] == scenario
    assert "version.avalanche-lib" in mlrun.data.params and "strategy" in mlrun.data.params
    assert mlrun.data.metrics["final/acc"] == pytest.approx(res["acc"])
    history = client.get_metric_history(res["mlflow_run_id"], "Top1_Acc_Stream/eval_phase/test_stream/Task000"
                                        if scenario != "task" else "Top1_Acc_Stream/eval_phase/test_stream/Task001")
    assert len(history) >= 1
    artifacts = {a.path for a in client.list_artifacts(res["mlflow_run_id"])}
    assert {"accuracy_matrix.json", "accuracy_matrix.png"} <= artifacts


def test_a_value_outside_the_declared_choices_fails_before_any_data_is_loaded(monkeypatch, tmp_path):
    import avalanche_ext.runner.tracked as tracked

    with pytest.raises(HParamError, match="recipe 'exstream': linkage must be one of 'centroid', 'ward', got 'single'"):
        get_recipe("exstream").resolve("split_digits", {"linkage": "single"})
    with pytest.raises(HParamError, match="mode must be one of 'auto', 'gg', 'gns', 'gnu', got 'magic'"):
        get_recipe("supsup").resolve("split_digits", {"mode": "magic"})

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(tracked, "build_benchmark", no_data)
    with pytest.raises(HParamError, match="balance must be one of 'class', 'global'"):
        run(RunConfig("exstream", overrides={"balance": "nope"}, tracking_uri=f"sqlite:///{tmp_path}/m.db"))


def test_declared_choices_must_hold_the_defaults():
    with pytest.raises(ValueError, match="the default head='linear' on split_digits is not among its choices"):
        register(name="_choices", family="baseline", paper="-", scenarios=("class",), hparams={"head": "cosine"},
                 per_benchmark={"split_digits": {"head": "linear"}}, choices={"head": ("cosine", "mlp")})(lambda ctx: None)
    with pytest.raises(ValueError, match="choices name 'heads', which is not a hyper-parameter"):
        register(name="_choices", family="baseline", paper="-", scenarios=("class",),
                 choices={"heads": ("a", "b")})(lambda ctx: None)
    assert "_choices" not in _RECIPES
