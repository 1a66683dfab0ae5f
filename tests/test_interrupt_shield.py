"""A stop signal that lands during a write to the tracking store raises only once the write is complete."""

import os
import signal

import pytest

from avalanche_ext.logging.resilient import RetryingCalls
from avalanche_ext.logging.shield import defer, shielded
from avalanche_ext.runner.interrupt import RunInterrupted, interrupts_raise


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_store_call_raises_after_the_call_completes(sig):
    done = []

    def write():
        os.kill(os.getpid(), sig)  # delivered before the next bytecode of this function
        done.append("first half")
        done.append("second half")
        return "written"

    with pytest.raises(RunInterrupted) as stop, interrupts_raise():
        RetryingCalls(5.0)(write)
        done.append("after the call")  # never reached: the interrupt is raised as the call returns
    assert done == ["first half", "second half"]
    assert stop.value.signum == sig


def test_a_signal_outside_a_store_call_raises_at_once():
    done = []
    with pytest.raises(RunInterrupted), interrupts_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("after the signal")
    assert done == []


def test_the_handlers_come_back_after_an_interrupted_run():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted), interrupts_raise():
        with shielded():
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_nested_blocks_defer_to_the_outermost_end_and_outside_nothing_is_deferred():
    seen = []
    assert defer(lambda: seen.append("ran")) is False
    with shielded():
        with shielded():
            assert defer(lambda: seen.append("ran")) is True
        assert seen == []
    assert seen == ["ran"]
    with shielded():
        pass
    assert seen == ["ran"]  # a deferred action runs once


@pytest.mark.slow
def test_signals_that_land_inside_sqlite_writes_still_end_each_run_killed_at_once_with_one_line(tmp_path):
    """Before the shield, about one signal in five left a half-done transaction holding SQLite's write
    lock: the KILLED write then waited, logged 'database is locked' tracebacks, or never came."""
    import random
    import subprocess
    import sys
    import time
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    root = Path(__file__).resolve().parents[1]
    uri = f"sqlite:///{tmp_path}/m.db"
    MlflowClient(uri).search_experiments()  # the store exists: its creation's log lines are not the runs'
    rng, n_runs, signals = random.Random(0), 12, []
    proc = subprocess.Popen([sys.executable, str(root / "tests" / "store_writer.py"), uri, str(n_runs)],
                            env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for trial in range(n_runs):
            assert proc.stdout.readline().strip() == "writing", (trial, proc.poll())
            time.sleep(rng.uniform(0.2, 0.6))
            signals.append(rng.choice([signal.SIGINT, signal.SIGTERM]))
            proc.send_signal(signals[-1])
            sent = time.monotonic()
            assert proc.stdout.readline().strip() == "ended", (trial, proc.poll())
            assert time.monotonic() - sent < 15, f"run {trial} took {time.monotonic() - sent:.0f} s to end"
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(30)
    lines = err.strip().splitlines()
    assert [line.split(" after ")[0] for line in lines] == [
        f"run{i} stopped by {s.name}" for i, s in enumerate(signals)], err[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("writer").experiment_id])
    assert len(runs) == n_runs and {r.info.status for r in runs} == {"KILLED"}
    for r in runs:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "m")]
        assert len(steps) == len(set(steps)), f"{r.info.run_name}: a metric batch was written twice"
