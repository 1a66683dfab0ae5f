"""Where PackNet's training step spends its time on the reduced ResNet-18, next to naive's.

``perf/device_check.py`` times every recipe's training step relative to ``naive``; PackNet's is
above the 1.5x this pack aims at. This script builds both recipes' strategies on the same
synthetic 32x32 stream (``perf/device_check.py``'s), trains the first experience, then profiles
the second experience's training with ``torch.profiler`` and prints, for each, the time per
step and the operators that take most of it. Usage::

    python perf/packnet_step_profile.py            # writes perf/results/packnet_step_profile.txt
"""

from __future__ import annotations

import importlib.util
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avalanche_ext.recipe import RecipeContext  # noqa: E402
from avalanche_ext.registry import get_recipe  # noqa: E402
from avalanche_ext.runner import make_evaluator  # noqa: E402

_spec = importlib.util.spec_from_file_location("device_check", ROOT / "perf" / "device_check.py")
device_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(device_check)

OUT = ROOT / "perf" / "results" / "packnet_step_profile.txt"


def profiled(name: str, per_class: int = 32) -> tuple[float, str]:
    """ms per training step of ``name`` in the task scenario, and its top operators by self CPU time."""
    recipe = get_recipe(name)
    stream = device_check.synthetic_stream("task", per_class)
    timer = device_check.StepTimer(lambda: None)
    hp = recipe.resolve(None, {"arch": "resnet18", "batch_size": device_check.BATCH, "epochs": 1})
    torch.manual_seed(0)
    strategy = recipe.build(RecipeContext(stream, hp, make_evaluator([]), plugins=[timer], device="cpu", seed=0))
    strategy.train(stream.train_stream[0])
    timer.active = True
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        strategy.train(stream.train_stream[1])
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    return 1000 * sum(timer.times) / len(timer.times), table


def main() -> int:
    torch.set_num_threads(torch.get_num_threads())
    profiled("naive", per_class=4)  # warm-up: lazy set-ups are paid once per process
    buf = io.StringIO()
    with redirect_stdout(buf):
        print("$ python perf/packnet_step_profile.py")
        steps = {}
        for name in ("naive", "packnet"):
            steps[name], table = profiled(name)
            print(f"\n## {name}: {steps[name]:.1f} ms per training step (task scenario, resnet18, batch "
                  f"{device_check.BATCH})\n")
            print(table)
        print(f"\npacknet / naive: {steps['packnet'] / steps['naive']:.2f}x")
    text = buf.getvalue()
    print(text)
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
