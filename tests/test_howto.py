"""The how-tos (docs/howto/*.py) run as a user runs them: a fresh process in a folder outside the
repository, with one training epoch (``HOWTO_EPOCHS=1``) so that each takes seconds, and each
prints or stores what its page says it does."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
HOWTOS = sorted((ROOT / "docs" / "howto").glob("*.py"))
TRAIN_SAMPLES = 899  # the even-indexed half of scikit-learn's 1,797 digits, as the how-tos split them


def run_howto(name: str, folder: Path, epochs: int = 1) -> str:
    env = dict(os.environ, HOWTO_EPOCHS=str(epochs), OMP_NUM_THREADS="1", MLFLOW_TRACKING_URI=f"sqlite:///{folder}/m.db")
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "howto" / f"{name}.py")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    accuracy = [float(a) for a in re.findall(r"\baccuracy (\d\.\d+)", proc.stdout)]
    assert accuracy and all(0.0 <= a <= 1.0 for a in accuracy), proc.stdout
    return proc.stdout


def test_every_howto_is_tested_and_has_a_page():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")} - {"every_howto_is_tested_and_has_a_page"}
    assert {p.stem for p in HOWTOS} == tested
    pages = "\n".join(p.read_text() for p in (ROOT / "docs" / "howto").glob("*.md"))
    assert all(f'"docs/howto/{p.name}"' in pages for p in HOWTOS), "a how-to script that no page includes"


def test_plugin_hat(tmp_path):
    out = run_howto("plugin_hat", tmp_path)
    task0 = re.findall(r"after task (\d): task 0 accuracy (\S+)", out)
    assert [t for t, _ in task0] == list("01234")
    assert len({a for _, a in task0}) == 1  # task 0 is answered exactly as after its own training


def test_buffer_exstream(tmp_path):
    out = run_howto("buffer_exstream", tmp_path)
    stored = [int(n) for n in re.findall(r"(\d+) stored vectors", out)]
    assert stored == [20, 40, 60, 80, 100]  # 10 per class, two classes per experience
    counts = ast.literal_eval(re.search(r"stand for: (\{.*\})", out).group(1))
    assert sorted(counts) == list(range(10)) and sum(counts.values()) == TRAIN_SAMPLES


def test_latent_replay(tmp_path):
    out = run_howto("latent_replay", tmp_path)
    states = re.findall(r"after experience (\d): (\d+) latents stored, features (\w+)", out)
    assert [s for _, _, s in states] == ["trained"] + ["frozen"] * 4
    assert all(int(n) == 300 for _, n, _ in states[1:])
    assert "frozen below the cut: ['features.0.weight', 'features.0.bias']" in out


def test_mlflow_logger(tmp_path):
    out = run_howto("mlflow_logger", tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    runs = client.search_runs([client.get_experiment_by_name("howto").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["replay-close", "replay-with"]
    for run in runs:
        assert run.info.status == "FINISHED" and f"run {run.info.run_name}: status FINISHED" in out
        assert 0.0 <= run.data.metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"] <= 1.0
        assert "final/acc" in run.data.metrics and "acc_matrix/after_exp004/exp000" in run.data.metrics  # on close
        assert run.data.params["plugin.ReplayPlugin.mem_size"] == "200"  # the strategy's description
    assert {r.info.run_name: r.data.params.get("data") for r in runs} == {"replay-with": "digits", "replay-close": None}


def test_save_restore(tmp_path):
    out = run_howto("save_restore", tmp_path, epochs=3)  # 3 epochs: task 0 is learned, so equality means something
    saved, restored = (ast.literal_eval(v) for v in re.search(r"accuracy (\[.*\]) when saved, (\[.*\]) restored", out).groups())
    assert restored == saved and saved[0] > 0.6
    assert ast.literal_eval(re.search(r"tasks 0 and 1 still (\[.*\])", out).group(1)) == saved
    checkpoint = torch.load(tmp_path / "hat_checkpoint.pt", weights_only=True)
    assert checkpoint["plugin"]["trained_tasks"] == [0, 1]
