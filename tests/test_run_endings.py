"""Every way a run ends leaves the right MLflow status and one line on standard error."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from avalanche_ext.logging import MLflowLogger, Tracking
from avalanche_ext.logging.liveness import HEARTBEAT_TAG, PID_TAG
from avalanche_ext.runner import RunConfig, check_seed, run

ROOT = Path(__file__).resolve().parents[1]


def _cli(tmp_path, uri, *extra):
    return [sys.executable, "-m", "avalanche_ext.cli", "run", "naive", "--n-experiences", "3", "--epochs", "4",
            "--threads", "1", "-q", "--no-log-model", "--tracking-uri", uri,
            "--checkpoint-dir", str(tmp_path / "ckpt"), *extra]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_run_killed_with_its_checkpoint_and_one_line(sig, tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    Tracking(uri).client  # the store exists: its creation's log lines are not the run's
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_cli(tmp_path, uri), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "ckpt").glob("*.ckpt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait(30)
    assert proc.returncode == 128 + sig, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    (ckpt,) = (tmp_path / "ckpt").glob("*.ckpt")
    assert f"interrupted by {sig.name}" in lines[0] and f"checkpoint kept in {ckpt}" in lines[0]
    assert lines[0].endswith("--resume") and "continue with: avalanche-ext run naive" in lines[0]
    client = MlflowClient(uri)
    (r,) = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    assert r.info.status == "KILLED" and r.data.tags["killed_reason"] == f"interrupted by {sig.name}"
    assert r.info.run_id in lines[0]


def _run(uri, ckpt, **kw):
    base = dict(n_experiences=3, epochs=1, tracking_uri=uri, progress=False, checkpoint_dir=str(ckpt),
                log_model=False)
    return run(RunConfig("naive", **{**base, **kw}))


@pytest.mark.slow
def test_a_restart_with_other_settings_ends_the_old_run_killed_and_keeps_checkpoints_apart(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    old = _run(uri, tmp_path, stop_after=1)
    client.update_run(old["mlflow_run_id"], status="RUNNING")  # as a process killed by the system leaves it
    new = _run(uri, tmp_path, epochs=2, stop_after=1)
    r = client.get_run(old["mlflow_run_id"])
    assert r.info.status == "KILLED"
    assert "started again with other settings" in r.data.tags["killed_reason"]
    assert "hp.epochs: checkpoint 1, now 2" in r.data.tags["killed_reason"]
    names = sorted(p.name for p in tmp_path.glob("*.ckpt"))
    assert len(names) == 2 and all(n.startswith("naive-split_digits-class-seed0-") for n in names)
    # --resume with the first settings still finds its own checkpoint; with a third, none fits.
    assert _run(uri, tmp_path, resume=True)["resumed_from_step"] == 1
    from avalanche_ext.checkpoint import CheckpointMismatchError

    with pytest.raises(CheckpointMismatchError, match="hp.epochs: checkpoint 2, now 3"):
        _run(uri, tmp_path, epochs=3, resume=True)
    assert new["mlflow_run_id"] != old["mlflow_run_id"]


@pytest.mark.slow
def test_metric_steps_are_logged_once_after_a_resume_over_steps_already_logged(tmp_path):
    """A process killed after logging experience 3 but before its checkpoint: the resume trains it again."""
    import shutil

    uri = f"sqlite:///{tmp_path}/m.db"
    stopped = _run(uri, tmp_path / "ckpt", epochs=2, stop_after=2)
    (ckpt,) = (tmp_path / "ckpt").glob("*.ckpt")
    shutil.copy(ckpt, tmp_path / "saved.ckpt")
    _run(uri, tmp_path / "ckpt", epochs=2, resume=True)  # logs experience 3 and the summaries
    shutil.copy(tmp_path / "saved.ckpt", ckpt)  # ... but its process died before the checkpoint was removed
    client = MlflowClient(uri)
    run_id = stopped["mlflow_run_id"]
    client.update_run(run_id, status="RUNNING")
    again = _run(uri, tmp_path / "ckpt", epochs=2, resume=True)
    assert again["mlflow_run_id"] == run_id
    keys = client.get_run(run_id).data.metrics
    assert any(k.startswith("Top1_Acc_Epoch") for k in keys)
    for key in keys:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), f"{key} has a step twice: {steps}"
    epoch_acc = [k for k in keys if k.startswith("Top1_Acc_Epoch")][0]
    assert len(client.get_metric_history(run_id, epoch_acc)) == 3 * 2  # 3 experiences of 2 epochs


def test_runs_close_stale_ends_runs_without_a_live_process(tmp_path, capsys):
    from avalanche_ext.cli import main

    uri = f"sqlite:///{tmp_path}/m.db"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=60)
    dead_pid = dead.stdout.strip()
    gone = MLflowLogger(run_name="gone", tracking_uri=uri)
    gone.set_tag(PID_TAG, dead_pid)
    old = MLflowLogger(run_name="silent", tracking_uri=uri)
    old.set_tag(PID_TAG, "1")  # a live process, but no heartbeat for ten minutes
    old.set_tag(HEARTBEAT_TAG, f"{time.time() - 600:.0f}")
    alive = MLflowLogger(run_name="alive", tracking_uri=uri)
    assert main(["runs", "--close-stale", "--tracking-uri", uri]) == 0
    out = capsys.readouterr()
    client = MlflowClient(uri)
    assert client.get_run(gone.run_id).info.status == "KILLED"
    assert f"its process {dead_pid}" in client.get_run(gone.run_id).data.tags["killed_reason"]
    assert client.get_run(old.run_id).info.status == "KILLED"
    assert "no heartbeat for" in client.get_run(old.run_id).data.tags["killed_reason"]
    assert client.get_run(alive.run_id).info.status == "RUNNING"
    assert "2 stale run(s) marked KILLED" in out.err and gone.run_id in out.out and alive.run_id not in out.out


def test_library_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 4294967295\], got -1$"):
        check_seed(-1)
    with pytest.raises(ValueError, match="^seed must be"):
        run(RunConfig("naive", seed=2**32))
    from avalanche_ext.hparams import HParamError
    from avalanche_ext.registry import get_recipe

    for raw in ("nan", "NaN", "inf", "-Infinity", "INF"):
        with pytest.raises(HParamError, match="must be a finite number"):
            get_recipe("naive").resolve("split_digits", {"lr": raw})
    with pytest.raises(HParamError, match="lr must be > 0"):
        get_recipe("naive").resolve("split_digits", {"lr": -1e-3})
    with pytest.raises(HParamError, match="must be a finite number"):
        get_recipe("naive").resolve("split_digits", {"lr": float("nan")})


def _logged_model(uri, result):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.pytorch.load_model(f"runs:/{result['mlflow_run_id']}/model").eval()


def _accuracies(forward, scenario):
    """``forward(inputs, task labels)``'s accuracy on each test experience of split_digits (2 experiences)."""
    from avalanche_ext.benchmarks import build_benchmark

    accs = []
    for exp in build_benchmark("split_digits", scenario, n_experiences=2, seed=0).test_stream:
        xs = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
        ys = torch.tensor([int(exp.dataset[i][1]) for i in range(len(exp.dataset))])
        with torch.no_grad():
            accs.append(float((forward(xs, torch.full((len(ys),), exp.task_label)).argmax(1) == ys).float().mean()))
    return accs


@pytest.mark.slow
def test_the_logged_model_reproduces_the_final_accuracy(tmp_path):
    import mlflow
    import numpy as np

    uri = f"sqlite:///{tmp_path}/m.db"
    result = run(RunConfig("naive", n_experiences=2, epochs=1, tracking_uri=uri, progress=False))
    model = _logged_model(uri, result)
    assert np.allclose(_accuracies(lambda xs, tasks: model(xs), "class"), result["acc_matrix"][-1], atol=1e-6)
    client = MlflowClient(uri)
    r = client.get_run(result["mlflow_run_id"])
    (dataset,) = r.inputs.dataset_inputs
    assert dataset.dataset.name == "split_digits" and '"seed": 0' in dataset.dataset.source
    files = mlflow.artifacts.download_artifacts(f"runs:/{result['mlflow_run_id']}/model")
    assert (Path(files) / "extra_files" / "plugin_states.pt").is_file()
    reqs = (Path(files) / "requirements.txt").read_text()
    assert "torch==" in reqs and "avalanche-lib==" in reqs


@pytest.mark.slow
def test_a_task_il_model_that_needs_task_labels_is_logged_and_reproduces_the_accuracy(tmp_path):
    import numpy as np
    from avalanche.models.utils import avalanche_forward

    uri = f"sqlite:///{tmp_path}/m.db"
    result = run(RunConfig("ewc", scenario="task", n_experiences=2, epochs=1, tracking_uri=uri, progress=False))
    assert "model_error" not in MlflowClient(uri).get_run(result["mlflow_run_id"]).data.tags
    model = _logged_model(uri, result)
    accs = _accuracies(lambda xs, tasks: avalanche_forward(model, xs, tasks), "task")
    assert np.allclose(accs, result["acc_matrix"][-1], atol=1e-6)
