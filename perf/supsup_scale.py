"""SupSup at scale: many permuted tasks, memory per task, task inference vs number of tasks.

Learns ``--tasks`` (default 50) permuted tasks of ``permuted_digits`` one after the other
with :class:`~avalanche_ext.plugins.SupSupPlugin` in the GNs scenario (experience
boundaries name the tasks while training; the task is inferred at test). After selected
numbers of tasks it measures, over the test samples of every task learned so far:

* **memory**: bytes of the stored per-task state (packed masks, and batch-norm statistics
  if any), counted from the model's ``state_dict`` and divided by the number of tasks,
  next to what one float32 copy of the masked weights would cost;
* **task inference accuracy**: share of test samples (or of per-task test batches) routed
  to their own task's mask, by one-shot inference per sample, one-shot per batch, the
  binary-search variant per sample, and by trying every mask (lowest entropy) per sample
  and per batch;
* **accuracy**: classification accuracy with the true mask (GG) and with the mask chosen
  by one-shot per-sample inference (GNs).

Before that, it times one training epoch of SupSup against one epoch of ``naive`` on the
same network (a plain MLP with the same layer shapes), alternating the two
``--timing-rounds`` times in the same process, and reports the median ratio.

Usage::

    python perf/supsup_scale.py --threads 1                      # 50 tasks
    python perf/supsup_scale.py --tasks 10 --eval-at 1 5 10      # quick look

Writes ``perf/results/supsup_scale.json``, the page's table ``perf/results/supsup_scale.md`` and
``docs/methods/supsup_scale.png``; ``--replot`` writes the last two again from the JSON without training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _tensors(exp, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    ds = exp.dataset
    n = len(ds) if limit is None else min(limit, len(ds))
    return torch.stack([ds[i][0] for i in range(n)]), torch.tensor([int(ds[i][1]) for i in range(n)])


def _strategy(model: nn.Module, plugins: list, args: argparse.Namespace, epochs: int):
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin

    return Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
                 criterion=nn.CrossEntropyLoss(), train_mb_size=args.batch_size, train_epochs=epochs,
                 eval_mb_size=256, plugins=plugins, evaluator=EvaluationPlugin(loggers=[]))


def time_epochs(stream, args: argparse.Namespace) -> dict:
    """Median wall time of one training epoch: SupSup vs naive on the same layer shapes."""
    from avalanche_ext.models import build_network, build_supsup_network
    from avalanche_ext.plugins import SupSupPlugin

    n_out = stream.n_outputs + args.extra_outputs
    torch.manual_seed(args.seed)
    plain = build_network(stream.input_shape, n_out, hidden=args.hidden, layers=args.layers)
    supsup_net = build_supsup_network(build_network(stream.input_shape, stream.n_outputs, hidden=args.hidden,
                                                    layers=args.layers), extra_outputs=args.extra_outputs,
                                      seed=args.seed)
    assert [tuple(m.shape) for m in supsup_net.masked_layers] == \
        [tuple(p.shape) for n, p in plain.named_parameters() if n.endswith("weight")]
    naive = _strategy(plain, [], args, epochs=1)
    supsup = _strategy(supsup_net, [SupSupPlugin("gns", task_ids="experiences")], args, epochs=1)
    exp = stream.train_stream[0]
    naive.train(exp), supsup.train(exp)  # warm-up
    times: dict[str, list[float]] = {"naive": [], "supsup": []}
    for _ in range(args.timing_rounds):
        for name, strategy in (("naive", naive), ("supsup", supsup)):
            t0 = time.perf_counter()
            strategy.train(exp)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"epoch_s": times, "median_epoch_s": med, "ratio_supsup_to_naive": med["supsup"] / med["naive"],
            "samples_per_epoch": len(exp.dataset)}


@torch.no_grad()
def measure(net, plugin, tests: list, n_tasks: int, args: argparse.Namespace) -> dict:
    from avalanche_ext.functional.supsup import binary_inference, exhaustive_inference, oneshot_inference

    net.eval()
    k = net.num_masks
    hits = {"oneshot_sample": 0, "oneshot_batch": 0, "binary_sample": 0, "exhaustive_sample": 0,
            "exhaustive_batch": 0}
    acc = {"gg": 0, "gns_oneshot_sample": 0}
    n_samples = n_binary = 0
    t0 = time.perf_counter()
    for task in range(n_tasks):
        x, y = tests[task]
        truth = plugin.exp_to_mask[task]

        def superpose(alphas, x=x):
            return net.superpose(x, alphas)

        with torch.enable_grad():
            per_sample, _ = oneshot_inference(superpose, k, len(x), per_sample=True)
            per_batch, _ = oneshot_inference(superpose, k, len(x), per_sample=False)
            xb = x[: args.binary_per_task]
            binary = binary_inference(lambda a, xb=xb: net.superpose(xb, a), k, len(xb), per_sample=True)
        exhaustive = exhaustive_inference(lambda i, x=x: net(x, task=i), k, per_sample=True)
        hits["exhaustive_sample"] += int((exhaustive == truth).sum())
        hits["exhaustive_batch"] += int(exhaustive_inference(lambda i, x=x: net(x, task=i), k, per_sample=False)[0] == truth)
        hits["oneshot_sample"] += int((per_sample == truth).sum())
        hits["oneshot_batch"] += int(per_batch[0] == truth)
        hits["binary_sample"] += int((binary == truth).sum())
        acc["gg"] += int((net(x, task=truth).argmax(1) == y).sum())
        acc["gns_oneshot_sample"] += int((net(x, task=per_sample).argmax(1) == y).sum())
        n_samples += len(x)
        n_binary += len(xb)
    infer_s = time.perf_counter() - t0
    state = net.state_dict()
    per_task_bytes = sum(v.numel() * v.element_size() for key, v in state.items()
                         if ".mask_" in key or ".mean_" in key or ".var_" in key)
    report = net.memory_report()
    return {
        "tasks": n_tasks,
        "task_inference": {"oneshot_sample": hits["oneshot_sample"] / n_samples,
                           "oneshot_batch": hits["oneshot_batch"] / n_tasks,
                           "binary_sample": hits["binary_sample"] / n_binary,
                           "exhaustive_sample": hits["exhaustive_sample"] / n_samples,
                           "exhaustive_batch": hits["exhaustive_batch"] / n_tasks},
        "acc": {k2: v / n_samples for k2, v in acc.items()},
        "stored_task_bytes": per_task_bytes,
        "bytes_per_task_measured": per_task_bytes / max(k, 1),
        "bytes_per_task_reported": report["bytes_per_task"],
        "float32_bytes_per_task_equivalent": report["float32_bytes_per_task_equivalent"],
        "state_dict_bytes": sum(v.numel() * v.element_size() for v in state.values()),
        "inference_s": infer_s,
    }


def plot(points: list[dict], timing: dict, path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [p["tasks"] for p in points]
    fig, (ax_mem, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_mem.plot(tasks, [p["stored_task_bytes"] / 1024 for p in points], "o-", label="stored masks (bit-packed)")
    ax_mem.plot(tasks, [p["tasks"] * p["float32_bytes_per_task_equivalent"] / 1024 for p in points], "s--",
                label="a float32 copy of the weights per task")
    ax_mem.set_xlabel("number of tasks learned")
    ax_mem.set_ylabel("memory of all learned tasks (KiB, log scale)")
    ax_mem.set_yscale("log")
    per_task = points[-1]["bytes_per_task_measured"]
    ax_mem.set_title(f"{per_task:,.0f} bytes per task (x{points[-1]['float32_bytes_per_task_equivalent'] / per_task:.0f}"
                     " smaller than float32)", fontsize=9)
    ax_mem.legend(fontsize=8)
    for key, label, style in (("oneshot_sample", "one-shot, per sample", "o-"),
                              ("oneshot_batch", "one-shot, per task batch", "s-"),
                              ("binary_sample", "binary search, per sample", "^-"),
                              ("exhaustive_sample", "every mask tried, per sample", "v-"),
                              ("exhaustive_batch", "every mask tried, per task batch", "D-")):
        ax_acc.plot(tasks, [100 * p["task_inference"][key] for p in points], style, label=f"task inference: {label}")
    ax_acc.plot(tasks, [100 * p["acc"]["gg"] for p in points], "k--", label="accuracy, true mask (GG)")
    ax_acc.plot(tasks, [100 * p["acc"]["gns_oneshot_sample"] for p in points], "k:",
                label="accuracy, inferred mask (GNs)")
    ax_acc.set_xlabel("number of tasks learned")
    ax_acc.set_ylabel("%")
    ax_acc.set_ylim(0, 101)
    ax_acc.set_title(f"permuted_digits, MLP {args.hidden}x{args.layers}; SupSup epoch = "
                     f"{timing['ratio_supsup_to_naive']:.2f} x naive epoch", fontsize=9)
    ax_acc.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(saved: dict) -> str:
    """The table and the memory and time lines of the page, from a finished record."""
    cols = [("one-shot / sample", "task_inference", "oneshot_sample"), ("one-shot / batch", "task_inference", "oneshot_batch"),
            ("binary / sample", "task_inference", "binary_sample"), ("every mask / sample", "task_inference", "exhaustive_sample"),
            ("every mask / batch", "task_inference", "exhaustive_batch"), ("accuracy, true mask", "acc", "gg"),
            ("accuracy, inferred (one-shot / sample)", "acc", "gns_oneshot_sample")]
    st, timing, points = saved["settings"], saved["timing"], saved["points"]
    lines = [f"Written by `python perf/supsup_scale.py --threads {st['threads']}` (seed {st['seed']}); "
             "task inference and accuracy in %.", "",
             "| tasks | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for pt in points:
        lines.append(f"| {pt['tasks']} | " + " | ".join(f"{100 * pt[group][key]:.1f}" for _, group, key in cols) + " |")
    last = points[-1]
    per_task = {int(pt["bytes_per_task_measured"]) for pt in points}
    med = timing["median_epoch_s"]
    lines += ["",
              f"- **Memory**: {', '.join(f'{b:,}' for b in sorted(per_task))} bytes per task at every point, counted "
              f"from the model's `state_dict` (a float32 copy of the masked weights would be "
              f"{last['float32_bytes_per_task_equivalent']:,} bytes); {last['tasks']} tasks take "
              f"{last['stored_task_bytes']:,} bytes.",
              f"- **Time**: one SupSup training epoch took {timing['ratio_supsup_to_naive']:.2f} times as long as one "
              f"`naive` epoch of a plain MLP with the same layer shapes (median of {st['timing_rounds']} alternating "
              f"epochs in the same process: {med['supsup']:.3f} s against {med['naive']:.3f} s for "
              f"{timing['samples_per_epoch']:,} images)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--eval-at", type=int, nargs="+", default=[1, 2, 5, 10, 20, 30, 40, 50])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--extra-outputs", type=int, default=90)
    parser.add_argument("--test-per-task", type=int, default=200, help="test samples of each task used")
    parser.add_argument("--binary-per-task", type=int, default=50, help="of those, used by the binary search")
    parser.add_argument("--timing-rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=str(ROOT / "perf" / "results" / "supsup_scale.json"))
    parser.add_argument("--png", default=str(ROOT / "docs" / "methods" / "supsup_scale.png"))
    parser.add_argument("--md", default=str(ROOT / "perf" / "results" / "supsup_scale.md"))
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG and the Markdown from the JSON")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.json).read_text())
        plot(saved["points"], saved["timing"], Path(args.png), argparse.Namespace(**saved["settings"]))
        Path(args.md).write_text(markdown(saved))
        print(markdown(saved))
        return
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.models import build_network, build_supsup_network
    from avalanche_ext.plugins import SupSupPlugin

    stream = build_benchmark("permuted_digits", "domain", n_experiences=args.tasks, seed=args.seed)
    timing = time_epochs(stream, args)
    print(f"epoch: supsup {timing['median_epoch_s']['supsup']:.3f}s, naive {timing['median_epoch_s']['naive']:.3f}s, "
          f"ratio {timing['ratio_supsup_to_naive']:.2f}", flush=True)

    torch.manual_seed(args.seed)
    net = build_supsup_network(build_network(stream.input_shape, stream.n_outputs, hidden=args.hidden,
                                             layers=args.layers), extra_outputs=args.extra_outputs, seed=args.seed)
    plugin = SupSupPlugin("gns", task_ids="experiences")
    strategy = _strategy(net, [plugin], args, epochs=args.epochs)
    tests = [_tensors(exp, args.test_per_task) for exp in stream.test_stream]
    points = []
    t_train = 0.0
    for t, exp in enumerate(stream.train_stream, start=1):
        t0 = time.perf_counter()
        strategy.train(exp)
        t_train += time.perf_counter() - t0
        if t in args.eval_at or t == args.tasks:
            point = measure(net, plugin, tests, t, args)
            point["train_s_total"] = t_train
            points.append(point)
            print(json.dumps({"tasks": t, **point["task_inference"], **point["acc"],
                              "bytes_per_task": point["bytes_per_task_measured"],
                              "inference_s": round(point["inference_s"], 1)}), flush=True)
    result = {"settings": vars(args), "timing": timing, "points": points}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    plot(points, timing, Path(args.png), args)
    Path(args.md).write_text(markdown(json.loads(Path(args.json).read_text())))
    print(markdown(json.loads(Path(args.json).read_text())))
    print(f"wrote {args.json}, {args.md} and {args.png}")


if __name__ == "__main__":
    main()
