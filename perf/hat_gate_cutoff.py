"""HAT on the reduced ResNet-18: where its training time went, and what the gate cutoff changes.

HAT multiplies every channel by a gate $\\sigma(s\\, e)$. Late in each epoch $s$ nears
$s_{max} = 400$, and a closed gate is then as small as $10^{-40}$: a denormal float32, and so
are the activations and gradients it multiplies. A CPU computes with denormal floats many
times slower, so the convolutions' backward pass dominated HAT's step. Since a gate with
$s\\, e < -50$ is exactly 0 (:data:`avalanche_ext.models.hat.GATE_CUTOFF`; the annealing
compensation stops restoring such a gate's gradient at the same point), the step costs about
what naive's does.

Side by side in this process, on the device check's synthetic 32x32 stream (``perf/device_check.py``,
10 classes in 2 experiences, batch 32; the second experience is timed), in interleaved rounds:

* ``naive``, then ``hat`` with the cutoff (the default), then ``hat`` with ``gate_cutoff = inf``
  (every gate a plain sigmoid): milliseconds per step and the ratio to naive's;
* a profile of each: the share of CPU time in ``aten::convolution_backward``, and its time per call.

With ``--accuracy`` it also runs the ``hat`` recipe on split_mnist5k's validation split, task-IL,
seeds 0-2, with and without the cutoff (the MLP of the recipe), to show the cutoff changes no
result.

Usage::

    python perf/hat_gate_cutoff.py --accuracy --out perf/results/hat_gate_cutoff.txt
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "perf"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import avalanche_ext.models.layers.hat as hat_models  # noqa: E402
import device_check  # noqa: E402
from avalanche_ext.registry import get_recipe  # noqa: E402
from avalanche_ext.report.stats import mean_spread  # noqa: E402

VARIANTS = (("naive", "naive", None), ("hat", "hat", hat_models.GATE_CUTOFF), ("hat, no cutoff", "hat", math.inf))


def timed(recipe: str, cutoff: float | None, per_class: int) -> tuple[float, float, float]:
    """(ms per step, share of CPU time in convolution backward, its ms per call) of one training run."""
    hat_models.GATE_CUTOFF = hat_models.GATE_CUTOFF if cutoff is None else cutoff
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        row = device_check.measure(get_recipe(recipe), torch.device("cpu"), "resnet18", per_class, 1)
    if row["ms_per_step"] is None:
        raise RuntimeError(f"{recipe}: {row['note']}")
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = [e for e in events if e.key == "aten::convolution_backward"][0]
    return row["ms_per_step"], conv.self_cpu_time_total / total, conv.self_cpu_time_total / conv.count / 1000


def accuracy(cutoff: float, seeds: list[int]) -> list[float]:
    from avalanche_ext.runner import RunConfig, run

    hat_models.GATE_CUTOFF = cutoff
    out = []
    for seed in seeds:
        result = run(RunConfig(recipe="hat", benchmark="split_mnist5k", scenario="task", seed=seed, validation=True,
                               tracking_uri="sqlite:////tmp/hat_gate_cutoff.db", progress=False, threads=1,
                               log_model=False))
        out.append(100 * result["acc"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three variants")
    ap.add_argument("--per-class", type=int, default=48, help="synthetic training samples per class")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--accuracy", action="store_true", help="also the split_mnist5k validation runs")
    ap.add_argument("--out", default=None, help="write the printed record here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    default_cutoff = hat_models.GATE_CUTOFF
    device_check.measure(get_recipe("naive"), torch.device("cpu"), "resnet18", 4, 1)  # warm-up
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in VARIANTS}
    for r in range(args.rounds):
        for name, recipe, cutoff in VARIANTS:
            results[name].append(timed(recipe, cutoff, args.per_class))
            print(f"  round {r + 1}: {name} {results[name][-1][0]:.0f} ms/step", file=sys.stderr, flush=True)
    hat_models.GATE_CUTOFF = default_cutoff

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    base = mean([t[0] for t in results["naive"]])
    lines = [f"# python perf/hat_gate_cutoff.py {' '.join(argv if argv is not None else sys.argv[1:])}",
             f"# torch {torch.__version__}, CPU, {args.threads} threads; reduced ResNet-18, 32x32 synthetic inputs, "
             f"batch 32, {args.per_class} samples per class, {args.rounds} interleaved rounds; means over rounds",
             "",
             f"{'variant':<16} {'ms/step':>8} {'x naive':>8} {'conv backward share':>20} {'ms per conv backward':>21}"]
    for name, _, _ in VARIANTS:
        rows = results[name]
        ms = mean([t[0] for t in rows])
        lines.append(f"{name:<16} {ms:8.1f} {ms / base:8.2f} {100 * mean([t[1] for t in rows]):19.0f}% "
                     f"{mean([t[2] for t in rows]):21.2f}")
    if args.accuracy:
        seeds = [0, 1, 2]
        lines += ["", "hat recipe, split_mnist5k validation split, task-IL, seeds 0-2 (mean +- sample std, per seed):"]
        for label, cutoff in (("cutoff 50", default_cutoff), ("no cutoff", math.inf)):
            accs = accuracy(cutoff, seeds)
            m, s = mean_spread(accs)
            lines.append(f"  {label:<10} {m:.1f} +- {s:.1f}  per seed {[round(a, 1) for a in accs]}")
        hat_models.GATE_CUTOFF = default_cutoff
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
