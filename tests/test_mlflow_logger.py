import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from avalanche.core import SupervisedPlugin
from mlflow.tracking import MlflowClient

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import MLflowLogger, Tracking, TrackingUnavailableError
from avalanche_ext.models import build_network
from avalanche_ext.registry import register, _RECIPES
from avalanche_ext.runner import RunConfig, run


class Boom(SupervisedPlugin):
    def before_training_iteration(self, strategy, *args, **kwargs):
        if strategy.clock.train_exp_counter == 1:
            raise RuntimeError("boom in experience 2")


def test_logger_in_a_plain_avalanche_loop(tracking_uri):
    stream = build_benchmark("split_digits", n_experiences=2, seed=0)
    with MLflowLogger(run_name="plain", tracking_uri=tracking_uri, params={"note": "x"}) as logger:
        model = build_network(stream.input_shape, stream.n_outputs, hidden=32, layers=1)
        strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                         criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, eval_mb_size=256,
                         evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[logger]))
        for exp in stream.train_stream:
            strategy.train(exp)
            strategy.eval(stream.test_stream)
    client = MlflowClient(tracking_uri)
    r = client.get_run(logger.run_id)
    assert r.info.status == "FINISHED" and r.data.params["note"] == "x" and r.data.params["strategy"] == "Naive"
    assert len(logger.matrix()) == 2 and len(logger.matrix()[0]) == 2
    assert "acc_matrix/after_exp001/exp000" in r.data.metrics
    steps = [m.step for m in client.get_metric_history(logger.run_id, "Top1_Acc_Stream/eval_phase/test_stream/Task000")]
    assert len(steps) == 2 and steps[0] < steps[1]


def test_run_that_raises_is_failed_with_error(tracking_uri):
    @register(name="_boom", family="baseline", paper="-", scenarios=("class",), summary="raises")
    def build(ctx):
        model = ctx.model()
        return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[Boom()]))

    try:
        with pytest.raises(RuntimeError, match="boom in experience 2"):
            run(RunConfig("_boom", n_experiences=2, epochs=1, tracking_uri=tracking_uri, progress=False))
    finally:
        _RECIPES.pop("_boom", None)
    client = MlflowClient(tracking_uri)
    (r,) = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    assert r.info.status == "FAILED"
    assert "boom in experience 2" in r.data.tags["error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(r.info.run_id)}
    # The first experience's evaluation was logged before the crash.
    assert "Top1_Acc_Stream/eval_phase/test_stream/Task000" in r.data.metrics


def test_nan_loss_stops_the_run_and_marks_it_failed(tracking_uri):
    from avalanche_ext.plugins import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        run(RunConfig("naive", n_experiences=2, epochs=2, overrides={"lr": 1e30, "optimizer": "sgd"},
                      tracking_uri=tracking_uri, progress=False))
    client = MlflowClient(tracking_uri)
    (r,) = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    assert r.info.status == "FAILED" and "NonFiniteLossError" in r.data.tags["error"]


def test_unreachable_server_fails_before_training():
    with pytest.raises(TrackingUnavailableError, match="cannot reach"):
        MLflowLogger(tracking_uri="http://127.0.0.1:9")


def _first_contact(uri):
    MLflowLogger(tracking_uri=uri, run_name="concurrent").close()


def test_concurrent_first_runs_share_a_new_sqlite_store(tmp_path):
    # Two `avalanche-ext run` started together on a database that does not exist yet both
    # create MLflow's schema; without a lock one of them dies in the migration.
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path}/fresh.db"
    ctx = mp.get_context("fork")  # the modules are imported already: starts in milliseconds
    procs = [ctx.Process(target=_first_contact, args=(uri,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("avalanche-ext").experiment_id])
    assert len(runs) == 4


class Reporting(SupervisedPlugin):
    """A plugin that says what it stores (the MemoryReporting protocol)."""

    def memory_report(self):
        return {"bytes_per_task": 123}


def test_memory_reports_are_logged_as_parameters_and_mlflow_params_is_ignored(tracking_uri):
    @register(name="_reporting", family="baseline", paper="-", scenarios=("class",), summary="reports memory")
    def build(ctx):
        model = ctx.model()
        strategy = Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[Reporting()]))
        strategy.mlflow_params = lambda: {"hidden_protocol": 1}
        return strategy

    try:
        res = run(RunConfig("_reporting", n_experiences=2, epochs=1, tracking_uri=tracking_uri, progress=False))
    finally:
        _RECIPES.pop("_reporting", None)
    params = MlflowClient(tracking_uri).get_run(res["mlflow_run_id"]).data.params
    assert params["memory.bytes_per_task"] == "123"
    assert "hidden_protocol" not in params


def test_a_tracking_server_is_checked_once_per_process(monkeypatch):
    import avalanche_ext.logging.store as store

    calls = []
    monkeypatch.setattr(store, "check_tracking", calls.append)
    monkeypatch.setattr(store, "_CONNECTED", {})
    a = Tracking.connect("http://tracking.invalid:5000")
    b = Tracking.connect("http://tracking.invalid:5000")
    assert a is b and calls == ["http://tracking.invalid:5000"]
    assert Tracking.connect("sqlite:///m.db").uri.startswith("sqlite:////")
