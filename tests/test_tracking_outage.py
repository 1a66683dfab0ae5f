"""A real ``mlflow server`` that goes away mid-run: training goes on, the records are spooled, ``sync`` sends each once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from servers import free_port, mlflow_server

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, EXPERIENCES = 2, 3


@pytest.mark.slow
def test_a_server_gone_mid_run_ends_with_one_line_and_sync_sends_every_point_once(tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "avalanche_ext.cli", "run", "naive", "--n-experiences", str(EXPERIENCES),
            "--epochs", str(EPOCHS), "--threads", "1", "-q", "--no-log-model", "--tracking-uri", uri,
            "--tracking-retry-s", "2", "--checkpoint-dir", str(tmp_path / "ckpt")]
    with mlflow_server(tmp_path, port):
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            deadline = time.monotonic() + 240
            while not list((tmp_path / "ckpt").glob("*.ckpt")) and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.2)
            proc.send_signal(signal.SIGSTOP)  # the run waits while its server goes away
        except BaseException:
            proc.kill()
            raise
    try:
        proc.send_signal(signal.SIGCONT)
        gone = time.monotonic()
        out, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
        proc.wait(30)
    took = time.monotonic() - gone
    assert proc.returncode == 0, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert "the tracking store stopped answering" in lines[0], lines[0]
    spool = Path(lines[0].rsplit("avalanche-ext sync ", 1)[1])
    assert spool.is_file() and spool.parent == tmp_path / "ckpt"
    assert took < 200  # two seconds of retries, then the rest of training without a store

    with mlflow_server(tmp_path, port):
        done = subprocess.run([sys.executable, "-m", "avalanche_ext.cli", "sync", str(spool)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "status FINISHED" in done.stderr and "a new run" not in done.stderr, done.stderr
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
        assert run.info.status == "FINISHED"
        assert {"accuracy_matrix.json", "accuracy_matrix.png"} <= {f.path for f in client.list_artifacts(run.info.run_id)}
        keys = run.data.metrics
        epoch_acc = [k for k in keys if k.startswith("Top1_Acc_Epoch")]
        assert epoch_acc and {"final/acc", f"acc_matrix/after_exp{EXPERIENCES - 1:03d}/exp000"} <= set(keys), sorted(keys)
        for key in keys:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), f"{key} has a step twice: {steps}"
        assert len(client.get_metric_history(run.info.run_id, epoch_acc[0])) == EXPERIENCES * EPOCHS
        # a second sync of the same spool finds it sent and changes nothing
        again = subprocess.run([sys.executable, "-m", "avalanche_ext.cli", "sync", str(tmp_path / "ckpt")],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert again.returncode == 0 and "no spool to send" in again.stderr, again.stderr
        assert len(client.get_metric_history(run.info.run_id, epoch_acc[0])) == EXPERIENCES * EPOCHS
