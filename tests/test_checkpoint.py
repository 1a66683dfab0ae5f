"""Checkpoints: a run stopped or killed after experience 2 and resumed ends exactly like a straight run."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from avalanche_ext import checkpoint as ck
from avalanche_ext.benchmarks import get_spec
from avalanche_ext.plugins import FiniteLossGuard
from avalanche_ext.registry import all_recipes, get_recipe
from avalanche_ext.runner import KILL_AFTER_ENV, RunConfig, default_scenario, run

ROOT = Path(__file__).resolve().parents[1]
RESUMABLE = [r for r in all_recipes() if not r.trains_once]
ONCE = [r for r in all_recipes() if r.trains_once]


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


#: Settings that only make the tiny runs faster (a VAE trained for 2 epochs instead of 10).
FAST = {"vae_epochs": 2, "gen_iterations": 50}


def config(recipe, uri, ckpt_dir, **kw):
    scenario = default_scenario(recipe, get_spec("split_digits"))
    fast = {k: v for k, v in FAST.items() if k in recipe.defaults("split_digits")}
    return RunConfig(recipe.name, benchmark="split_digits", scenario=scenario, seed=0, n_experiences=3, epochs=1,
                     tracking_uri=uri, progress=False, checkpoint_dir=str(ckpt_dir), overrides=fast, **kw)


@pytest.mark.parametrize("recipe", RESUMABLE, ids=lambda r: r.name)
def test_stop_after_two_experiences_and_resume_equals_a_straight_run(recipe, uri, tmp_path):
    straight = run(config(recipe, uri, tmp_path / "a"))
    stopped = run(config(recipe, uri, tmp_path / "b", stop_after=2))
    assert stopped["stopped"] and len(stopped["acc_matrix"]) == 2
    files = list((tmp_path / "b").glob("*.ckpt"))
    assert len(files) == 1
    client = MlflowClient(uri)
    assert client.get_run(stopped["mlflow_run_id"]).info.status == "KILLED"

    resumed = run(config(recipe, uri, tmp_path / "b", resume=True))
    # Same seed, same numbers: a straight run and a run resumed from its checkpoint agree exactly.
    assert resumed["acc_matrix"] == straight["acc_matrix"]
    assert resumed["resumed_from_step"] == 2 and not resumed["stopped"]
    # One MLflow run, continued: finished, and the stream accuracy was logged after each experience.
    assert resumed["mlflow_run_id"] == stopped["mlflow_run_id"]
    info = client.get_run(resumed["mlflow_run_id"])
    assert info.info.status == "FINISHED" and info.data.tags["resumed_from_step"] == "2"
    assert info.data.metrics["final/acc"] == pytest.approx(straight["acc"])
    # After each of the 3 experiences the stream accuracy was logged, at steps that keep growing across the resume.
    (stream_acc,) = sorted(k for k in info.data.metrics if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))[:1]
    steps = [m.step for m in client.get_metric_history(resumed["mlflow_run_id"], stream_acc)]
    assert len(steps) == 3 and steps == sorted(set(steps)), f"steps must continue after the resume: {steps}"
    assert not files[0].exists(), "a finished run removes its checkpoint"


@pytest.mark.parametrize("recipe", ONCE, ids=lambda r: r.name)
def test_recipes_that_train_once_are_deterministic(recipe, uri, tmp_path):
    a = run(config(recipe, uri, tmp_path))
    b = run(config(recipe, uri, tmp_path))
    assert a["acc_matrix"] == b["acc_matrix"]
    assert not list(tmp_path.glob("*.ckpt")), "nothing to resume in a single training call"


def test_sigkill_after_experience_two_then_resume_from_the_command_line(uri, tmp_path):
    """A real separate process dies with SIGKILL right after its second checkpoint; --resume finishes it."""
    args = [sys.executable, "-m", "avalanche_ext.cli", "run", "ewc", "--benchmark", "split_digits",
            "--n-experiences", "3", "--epochs", "1", "--seed", "0", "--tracking-uri", uri, "--threads", "1",
            "--checkpoint-dir", str(tmp_path / "ckpt"), "-q", "--json"]
    killed = subprocess.run(args, cwd=tmp_path, env={**os.environ, KILL_AFTER_ENV: "2"}, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (ckpt_file,) = (tmp_path / "ckpt").glob("*.ckpt")
    saved = torch.load(ckpt_file, weights_only=False)
    assert saved["version"] == ck.CHECKPOINT_VERSION and saved["progress"]["steps"] == 2
    run_id = saved["progress"]["mlflow_run_id"]
    assert MlflowClient(uri).get_run(run_id).info.status == "RUNNING"  # what a killed process leaves behind

    done = subprocess.run(args + ["--resume"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["mlflow_run_id"] == run_id and resumed["resumed_from_step"] == 2
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"

    torch.set_num_threads(1)
    straight = run(config(get_recipe("ewc"), uri, tmp_path / "straight"))
    assert resumed["acc_matrix"] == straight["acc_matrix"]


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    ck.atomic_save({"version": 1, "payload": torch.arange(5)}, path)

    def torn_write(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError, match="disk full"):
        ck.atomic_save({"version": 1, "payload": torch.arange(9)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=False)["payload"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"], "no temporary file is left behind"


@pytest.fixture(scope="module")
def stopped_ewc(tmp_path_factory, uri):
    """An ``ewc`` run stopped after two experiences, its checkpoint directory."""
    d = tmp_path_factory.mktemp("stopped")
    run(config(get_recipe("ewc"), uri, d, stop_after=2))
    return d


def test_resume_refuses_a_checkpoint_made_with_other_settings(stopped_ewc, uri):
    cfg = config(get_recipe("ewc"), uri, stopped_ewc, resume=True)
    cfg.overrides = {"ewc_lambda": 1.0}
    with pytest.raises(ck.CheckpointMismatchError, match="hp.ewc_lambda"):
        run(cfg)


def test_resume_refuses_another_runs_checkpoint_and_unknown_formats(stopped_ewc, tmp_path):
    (src,) = stopped_ewc.glob("*.ckpt")
    saved = torch.load(src, weights_only=False)
    other = ck.Checkpointer(tmp_path / "x.ckpt", {**saved["identity"], "recipe": "si"})
    ck.atomic_save(saved, other.path)
    with pytest.raises(ck.CheckpointMismatchError, match="recipe: checkpoint 'ewc', now 'si'"):
        other.load()
    ck.atomic_save({**saved, "version": 99}, other.path)
    with pytest.raises(ck.CheckpointError, match="format 99"):
        other.load()
    other.path.write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="cannot read checkpoint"):
        other.load()


class Holder:
    """Stands in for a strategy: ``capture_state`` and ``restore_state`` only use its attributes."""


def test_an_iterator_not_started_yet_is_saved_as_the_call_that_makes_it():
    from avalanche.training.plugins.mir import cycle

    saved = Holder()
    saved.replay = cycle([10, 20, 30])  # what MIR and A-GEM leave between experiences
    restored = Holder()
    ck.restore_state(restored, ck.capture_state(saved))
    assert [next(restored.replay) for _ in range(4)] == [10, 20, 30, 10]


def test_a_generator_already_in_use_is_refused_with_its_name():
    holder = Holder()
    holder.it = (x for x in range(3))
    next(holder.it)
    with pytest.raises(ck.CheckpointError, match="generator in use"):
        ck.capture_state(holder)


class Counter:
    """A plugin with a state_dict, and a lock that pickle refuses: pickling the object itself would fail."""

    def __init__(self, count=0):
        self.count = count
        self.lock = threading.Lock()

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


class OtherCounter(Counter):
    pass


class StatelessCounter:
    """A plugin whose state_dict says it has none: it is pickled whole, as any other attribute."""

    def __init__(self, count=0):
        self.count = count

    def state_dict(self):
        raise NotImplementedError

    def load_state_dict(self, state):
        raise AssertionError("never called")


def test_a_plugin_with_a_state_dict_is_saved_through_it_and_restored_into_the_rebuilt_plugin():
    saved = Holder()
    saved.plugins = [Counter(3), StatelessCounter(5)]
    saved.first = saved.plugins[0]  # another reference to the same plugin
    blob = ck.capture_state(saved)

    restored = Holder()
    fresh, fresh_stateless = Counter(), StatelessCounter()
    restored.plugins, restored.first = [fresh, fresh_stateless], None
    ck.restore_state(restored, blob)
    assert restored.plugins[0] is fresh and restored.first is fresh and fresh.count == 3
    assert restored.plugins[1] is not fresh_stateless and restored.plugins[1].count == 5

    other = Holder()
    other.plugins, other.first = [OtherCounter(), StatelessCounter()], None
    with pytest.raises(ck.CheckpointError, match="plugin0 is a Counter, the rebuilt strategy's is a OtherCounter"):
        ck.restore_state(other, blob)


class PoisonedSecondExperience(FiniteLossGuard):
    """The run's loss guard, with the loss made NaN during the second experience while ``active``."""

    active = True

    def before_backward(self, strategy, *args, **kwargs):
        if self.active and strategy.clock.train_exp_counter == 1:
            strategy.loss = strategy.loss * float("nan")
        super().before_backward(strategy, *args, **kwargs)


def test_nan_loss_stops_marks_the_run_failed_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import avalanche_ext.runner.tracked as tracked
    from avalanche_ext.cli import main

    uri = f"sqlite:///{tmp_path}/m.db"
    argv = ["run", "replay", "--n-experiences", "3", "--epochs", "1", "-q", "--json", "--tracking-uri", uri,
            "--checkpoint-dir", str(tmp_path / "ckpt")]
    monkeypatch.setattr(tracked, "FiniteLossGuard", PoisonedSecondExperience)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training stopped: the training loss is nan at experience 1" in err and "marked FAILED" in err
    client = MlflowClient(uri)
    (failed,) = client.search_runs([client.get_experiment_by_name("avalanche-ext").experiment_id])
    assert failed.info.status == "FAILED" and "NonFiniteLossError" in failed.data.tags["error"]
    (ckpt_file,) = (tmp_path / "ckpt").glob("*.ckpt")
    assert torch.load(ckpt_file, weights_only=False)["progress"]["steps"] == 1

    # The fault was transient: resuming continues from the checkpoint (which holds the poisoned guard).
    monkeypatch.setattr(PoisonedSecondExperience, "active", False)
    assert main(argv + ["--resume"]) == 0
    resumed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert resumed["mlflow_run_id"] == failed.info.run_id and resumed["resumed_from_step"] == 1
    assert client.get_run(failed.info.run_id).info.status == "FINISHED"
