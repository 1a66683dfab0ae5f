"""Buffer insert throughput: ExStream vs Avalanche's reservoir and class-balanced buffers.

Part 1 (throughput): the same online stream (class-IL, mini-experiences of
``--experience-size`` samples, each sample once) is fed to three buffers through their
``post_adapt(agent, experience)`` update, as Avalanche's ``ReplayPlugin`` does after each
mini-experience: ``ExStreamBuffer(per_class=k)`` (with the paper's L2 merge rule and with
``linkage="ward"``), ``ReservoirSamplingBuffer(10 k)`` and
``ClassBalancedBuffer(10 k, adaptive_size=False)``. Inputs are 64-dimensional
(``split_digits``, 1,347 samples) and 784-dimensional (``split_mnist5k``, 4,000 samples).
Samples/s are reported with the ratios ExStream / other, all from one run, buffers
interleaved by repeat so that load on the machine hits them alike (median of
``--repeats``). Avalanche's buffers only keep indices into the datasets, while ExStream
must read every sample to compare and average it; the last column is ExStream's own insert
on tensors already read, to separate the two costs.

Part 2 (share of training time): a streaming run of Avalanche's ``Naive`` + ``ReplayPlugin``
with each buffer on ``split_mnist5k`` (MLP 400-400, mini-batch 10 + 10 replayed); the time
spent inside the buffer update is divided by the whole training time.

Usage::

    python perf/exstream_throughput.py --threads 1
    python perf/exstream_throughput.py --render-only   # the table again from the saved JSON

Writes ``perf/results/exstream_throughput.json`` and its tables ``perf/results/exstream_throughput.md``,
which the ExStream page includes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avalanche_ext.benchmarks import build_benchmark  # noqa: E402
from avalanche_ext.benchmarks.online import online_train_stream  # noqa: E402

KINDS = ("exstream", "exstream_ward", "reservoir", "class_balanced")


def make_buffer(kind: str, per_class: int, n_classes: int = 10):
    from avalanche.training.storage_policy import ClassBalancedBuffer, ReservoirSamplingBuffer

    from avalanche_ext.storage import ExStreamBuffer

    if kind in ("exstream", "exstream_ward"):
        linkage = "ward" if kind == "exstream_ward" else "centroid"
        return ExStreamBuffer(per_class * n_classes, per_class=per_class, linkage=linkage)
    if kind == "reservoir":
        return ReservoirSamplingBuffer(per_class * n_classes)
    return ClassBalancedBuffer(per_class * n_classes, adaptive_size=False, total_num_classes=n_classes)


def insert_seconds(kind: str, experiences: list, per_class: int) -> float:
    """Seconds to push every mini-experience through a fresh buffer's ``post_adapt``."""
    buf = make_buffer(kind, per_class)
    t0 = time.perf_counter()
    for exp in experiences:
        buf.post_adapt(None, exp)
    elapsed = time.perf_counter() - t0
    if len(buf.buffer) > buf.max_size:
        raise AssertionError(f"{kind} exceeded its capacity")
    return elapsed


def tensor_insert_seconds(batches: list, per_class: int) -> float:
    """Seconds for ExStream's own insert (``add``) on tensors already read from the datasets."""
    from avalanche_ext.storage import ExStreamBuffer

    buf = ExStreamBuffer(per_class * 10, per_class=per_class)
    t0 = time.perf_counter()
    for x, y in batches:
        buf.add(x, y)
    return time.perf_counter() - t0


def throughput(args) -> list[dict]:
    rows = []
    for bench in ("split_digits", "split_mnist5k"):
        stream = build_benchmark(bench, "class", seed=0)
        experiences = list(online_train_stream(stream, args.experience_size, seed=0))
        n = sum(len(e.dataset) for e in experiences)
        dim = stream.input_size
        batches = []
        for e in experiences:
            items = [e.dataset[i] for i in range(len(e.dataset))]
            batches.append((torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])))
        for k in args.per_class:
            times: dict[str, list[float]] = {kind: [] for kind in KINDS}
            times["exstream_tensors"] = []
            for _ in range(args.repeats):
                for kind in KINDS:
                    times[kind].append(insert_seconds(kind, experiences, k))
                times["exstream_tensors"].append(tensor_insert_seconds(batches, k))
            med = {kind: statistics.median(v) for kind, v in times.items()}
            row = {"benchmark": bench, "dim": dim, "samples": n, "per_class": k,
                   **{f"{kind}_samples_per_s": n / med[kind] for kind in KINDS},
                   "exstream_insert_on_tensors_samples_per_s": n / med["exstream_tensors"],
                   "exstream_vs_reservoir": med["reservoir"] / med["exstream"],
                   "exstream_vs_class_balanced": med["class_balanced"] / med["exstream"],
                   "exstream_ward_vs_exstream": med["exstream"] / med["exstream_ward"]}
            rows.append(row)
            print(f"dim={dim:4d} k={k:3d} n={n}: " + ", ".join(
                f"{kind} {row[f'{kind}_samples_per_s']:,.0f}/s" for kind in KINDS)
                + f" | ExStream/reservoir {row['exstream_vs_reservoir']:.2f}x,"
                  f" ExStream/class-balanced {row['exstream_vs_class_balanced']:.2f}x"
                  f", Ward/L2 {row['exstream_ward_vs_exstream']:.2f}x"
                  f" | ExStream insert alone (tensors in hand) {row['exstream_insert_on_tensors_samples_per_s']:,.0f}/s",
                  flush=True)
    return rows


def training_share(args) -> list[dict]:
    from avalanche.training import Naive
    from avalanche.training.plugins import ReplayPlugin

    from avalanche_ext.models import build_network

    stream = build_benchmark("split_mnist5k", "class", seed=0)
    rows = []
    for kind in KINDS:
        torch.manual_seed(0)
        buf = make_buffer(kind, args.train_per_class)
        spent = [0.0]
        inner = buf.post_adapt

        def timed(agent, exp, inner=inner, spent=spent):
            t0 = time.perf_counter()
            inner(agent, exp)
            spent[0] += time.perf_counter() - t0

        buf.post_adapt = timed
        model = build_network(stream.input_shape, stream.n_outputs, hidden=400, layers=2)

        class Replay(ReplayPlugin):
            """Avalanche's replay, updating the buffer through ``post_adapt`` (not the deprecated ``update``)."""

            def after_training_exp(self, strategy, **kwargs):
                self.storage_policy.post_adapt(strategy, strategy.experience)

        strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                         criterion=torch.nn.CrossEntropyLoss(), train_mb_size=args.experience_size,
                         train_epochs=1, plugins=[Replay(mem_size=buf.max_size, storage_policy=buf)],
                         evaluator=None)
        t0 = time.perf_counter()
        for exp in online_train_stream(stream, args.experience_size, seed=0):
            strategy.train(exp)
        total = time.perf_counter() - t0
        rows.append({"buffer": kind, "per_class": args.train_per_class, "train_s": total,
                     "buffer_update_s": spent[0], "share": spent[0] / total})
        print(f"streaming split_mnist5k, {kind:14s} k={args.train_per_class}: train {total:.1f}s, "
              f"buffer update {spent[0]:.2f}s = {100 * spent[0] / total:.1f}% of training", flush=True)
    return rows


LABELS = {"split_digits": "64-d (split_digits)", "split_mnist5k": "784-d (split_mnist5k)"}


def render(result: dict) -> str:
    """The Markdown of a saved result: the throughput table, then each buffer's share of training time."""
    lines = ["Samples/s through each buffer's `post_adapt`, median of "
             f"{result['settings']['repeats']} interleaved repeats, one process.", "",
             "| input | k | ExStream | ExStream, Ward | reservoir | class-balanced | ExStream / reservoir "
             "| ExStream / class-balanced | Ward / L2 | ExStream insert alone |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["throughput"]:
        lines.append(f"| {LABELS.get(row['benchmark'], row['benchmark'])} | {row['per_class']} | "
                     + " | ".join(f"{row[f'{kind}_samples_per_s']:,.0f}" for kind in KINDS)
                     + f" | {row['exstream_vs_reservoir']:.2f}× | {row['exstream_vs_class_balanced']:.2f}×"
                     f" | {row['exstream_ward_vs_exstream']:.2f}× | {row['exstream_insert_on_tensors_samples_per_s']:,.0f} |")
    lines += ["", "Share of training time spent in the buffer update (streaming `split_mnist5k`, "
              "Naive + ReplayPlugin, MLP 400-400):", "",
              "| buffer | k | training (s) | buffer update (s) | share |", "|---|---|---|---|---|"]
    for row in result["training_share"]:
        lines.append(f"| {row['buffer']} | {row['per_class']} | {row['train_s']:.1f} | {row['buffer_update_s']:.2f} "
                     f"| {100 * row['share']:.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", nargs="+", type=int, default=[5, 20])
    p.add_argument("--train-per-class", type=int, default=20)
    p.add_argument("--experience-size", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "perf" / "results" / "exstream_throughput.json"))
    p.add_argument("--render-only", action="store_true", help="write the tables again from the saved JSON, measure nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.render_only:
        out.with_suffix(".md").write_text(render(json.loads(out.read_text())))
        print(f"wrote {out.with_suffix('.md')}")
        return
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="No loggers specified")
    settings = {k: v for k, v in vars(args).items() if k != "render_only"}
    result = {"settings": settings, "throughput": throughput(args), "training_share": training_share(args)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(render(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
