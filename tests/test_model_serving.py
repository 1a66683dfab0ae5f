"""A method that infers the task is logged as a class predictor: loaded back, and served over REST by ``mlflow models serve``."""

import json
import os
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.runner import RunConfig, run
from servers import MLFLOW, free_port, process

ROOT = Path(__file__).resolve().parents[1]


def _post(url: str, inputs: np.ndarray) -> list:
    request = urllib.request.Request(url, data=json.dumps({"inputs": inputs.tolist()}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["predictions"]


def test_hyper_parameters_survive_pickling_as_a_logged_model_holds_them():
    import pickle

    from avalanche_ext.hparams import HParams

    hp = pickle.loads(pickle.dumps(HParams({"lr": 0.1, "combine": "mean_softmax"})))
    assert hp.lr == 0.1 and dict(hp) == {"lr": 0.1, "combine": "mean_softmax"}
    with pytest.raises(AttributeError, match="no hyper-parameter 'lrr'"):
        hp.lrr


def _pyfunc_accuracies(model_uri: str) -> tuple[list[float], tuple[np.ndarray, np.ndarray]]:
    """The pyfunc model's accuracy on each test experience of split_digits (class-IL, 2 experiences),
    and the first 16 inputs with their predictions."""
    predictor = mlflow.pyfunc.load_model(model_uri)
    stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
    accs, first = [], None
    for exp in stream.test_stream:
        xs = np.stack([np.asarray(exp.dataset[i][0], dtype=np.float32) for i in range(len(exp.dataset))])
        ys = np.array([int(exp.dataset[i][1]) for i in range(len(exp.dataset))])
        predicted = np.asarray(predictor.predict(xs)).reshape(-1)
        accs.append(float((predicted == ys).mean()))
        first = (xs[:16], predicted[:16]) if first is None else first
    return accs, first


@pytest.mark.slow
def test_an_ensemble_is_served_as_class_predictions_without_task_labels(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    result = run(RunConfig("ensemble", n_experiences=2, epochs=1, tracking_uri=uri, progress=False))
    model_uri = f"runs:/{result['mlflow_run_id']}/model"
    mlflow.set_tracking_uri(uri)
    accs, first = _pyfunc_accuracies(model_uri)
    assert np.allclose(accs, result["acc_matrix"][-1], atol=1e-6)
    assert MlflowClient(uri).get_run(result["mlflow_run_id"]).data.tags["recipe"] == "ensemble"
    # the member factory (a function of the recipe, holding its context and the benchmark) is not in the model
    ensemble = mlflow.pytorch.load_model(model_uri).network
    assert ensemble.member_factory is None and len(ensemble.members) == 2
    pickled = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/data/model.pth")).read_bytes()
    assert b"classification_dataset" not in pickled and b"RecipeContext" not in pickled

    port = free_port()
    # the scoring server is started by name: the environment's scripts come first on PATH
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri,
           "PATH": os.pathsep.join([str(Path(MLFLOW).parent), os.environ.get("PATH", "")])}
    args = [MLFLOW, "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with process(args, f"http://127.0.0.1:{port}/ping", timeout=180, env=env, cwd=tmp_path):
        answered = _post(f"http://127.0.0.1:{port}/invocations", first[0])
    assert np.asarray(answered).reshape(-1).tolist() == first[1].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["supsup", "hnet"])
def test_a_method_that_infers_the_task_classifies_through_pyfunc_as_in_its_run(recipe, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    result = run(RunConfig(recipe, n_experiences=2, epochs=1, tracking_uri=uri, progress=False))
    mlflow.set_tracking_uri(uri)
    assert "model_error" not in MlflowClient(uri).get_run(result["mlflow_run_id"]).data.tags
    accs, _ = _pyfunc_accuracies(f"runs:/{result['mlflow_run_id']}/model")
    assert np.allclose(accs, result["acc_matrix"][-1], atol=1e-6)


@pytest.mark.slow
def test_a_model_that_needs_task_labels_is_logged_quietly_with_an_input_only_signature(tmp_path, capfd):
    """A multi-head model cannot answer the input example alone: the example is logged, and neither MLflow's
    warning that serving it failed nor its note on the pickle format, chosen on purpose, is shown."""
    uri = f"sqlite:///{tmp_path}/m.db"
    MlflowClient(uri).search_experiments()  # the store exists: its creation's log lines are not the run's
    capfd.readouterr()
    result = run(RunConfig("multihead", scenario="task", n_experiences=2, epochs=1, tracking_uri=uri,
                           progress=False))
    err = capfd.readouterr().err
    assert "Failed to validate serving input example" not in err and "Pickle" not in err, err[-2000:]
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(uri)
    info = get_model_info(f"runs:/{result['mlflow_run_id']}/model")
    assert info.signature.inputs is not None and info.signature.outputs is None
    assert info.saved_input_example_info is not None
