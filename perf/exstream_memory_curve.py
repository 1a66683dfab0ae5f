"""Accuracy vs memory size in streaming class-IL: ExStream vs reservoir vs class-balanced replay.

The streaming protocol: each original experience is cut into online mini-experiences of
``--experience-size`` samples (Avalanche's ``split_online_stream``), and each is trained on
once. The buffer is the only thing that changes between the three runs:

* ``exstream``: :class:`avalanche_ext.storage.ExStreamBuffer` with ``k`` points per class,
  merging the nearest pair in L2 distance (the paper's rule);
* ``exstream_ward``: the same buffer with ``linkage="ward"``, merging the pair whose merge
  least increases the within-cluster sum of squares;
* ``reservoir``: Avalanche's ``ReservoirSamplingBuffer`` of ``10 k`` samples;
* ``class_balanced``: Avalanche's ``ClassBalancedBuffer`` of ``10 k`` samples,
  ``k`` per class (``adaptive_size=False``), reservoir sampling inside each class.

All hold the same number of stored vectors at the end (``k`` per class, 10 classes).
Accuracy is measured on the whole test set after the last experience.

Two rehearsal protocols (``--rehearsal``), the same for every buffer:

* ``buffer`` (default, the paper's): each mini-experience is put into the buffer first,
  then the model trains one pass over the whole buffer in mini-batches of
  ``--buffer-batch`` (:class:`avalanche_ext.plugins.BufferRehearsalPlugin`);
* ``mixed``: Avalanche's ``ReplayPlugin``, each step learns ``--experience-size`` new
  samples plus ``--batch-size-mem`` samples drawn from the buffer, which is updated
  after the mini-experience.

The model is an MLP 400-400 on the raw pixels, trained with Adam (lr 1e-3). (The paper
streams embeddings of a pretrained CNN; none can be downloaded here. ``--features
pretrained`` streams embeddings of an MLP pretrained on the other data set instead.)

Usage::

    python perf/exstream_memory_curve.py --seeds 0 1 2 --threads 1
    python perf/exstream_memory_curve.py --rehearsal mixed --seeds 0 1 2 --threads 1
    python perf/exstream_memory_curve.py --benchmarks split_mnist5k --per-class 2 20 --seeds 0  # quick

Writes ``perf/results/exstream_memory_curve[_features][_mixed].json``, its table
``perf/results/exstream_memory_curve[_features][_mixed].md`` (which the ExStream page includes) and
``docs/methods/exstream_memory_curve[_features][_mixed].png``. Runs already in the JSON are not
repeated, so the same command on a finished file only writes the table and the plot again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avalanche_ext.benchmarks.online import online_train_stream  # noqa: E402
from avalanche_ext.evaluation import stream_accuracy  # noqa: E402
from avalanche_ext.report.stats import fmt, mean_std  # noqa: E402

BUFFERS = ("exstream", "exstream_ward", "reservoir", "class_balanced")


def subsample(source, per_class_train: int, per_class_test: int, seed: int = 0):
    """A stratified subsample of a Source (the same for every run)."""
    from avalanche_ext.benchmarks.sources import Source

    rng = np.random.RandomState(seed)

    def pick(y: torch.Tensor, n: int) -> torch.Tensor:
        idx = []
        for c in torch.unique(y).tolist():
            where = np.flatnonzero(y.numpy() == c)
            idx.append(rng.choice(where, size=min(n, len(where)), replace=False))
        return torch.as_tensor(np.sort(np.concatenate(idx)))

    tr, te = pick(source.y_train, per_class_train), pick(source.y_test, per_class_test)
    return Source(source.name + "-sub", source.x_train[tr], source.y_train[tr], source.x_test[te], source.y_test[te])


#: off-stream data the feature extractor is pretrained on, per benchmark (never the stream's own)
PRETRAIN_SOURCE = {"split_mnist5k": "fmnist", "split_fmnist": "mnist5k"}
_FEATURE_CACHE: dict = {}


def embed(source, name: str, args):
    """``source`` mapped through a frozen extractor (MLP 400-400) pretrained on other data."""
    from avalanche_ext.benchmarks.sources import Source
    from avalanche_ext.models import build_network
    from avalanche_ext.training.pretrain import pretrain_features

    key = (name, source.name)
    if key not in _FEATURE_CACHE:
        net = build_network(tuple(source.x_train.shape[1:]), 10, hidden=args.hidden, layers=2)
        pretrain_features(net, PRETRAIN_SOURCE[name], epochs=5, input_shape=tuple(source.x_train.shape[1:]))
        net.eval()
        with torch.no_grad():
            f_train, f_test = net.features(source.x_train).flatten(1), net.features(source.x_test).flatten(1)
        _FEATURE_CACHE[key] = Source(source.name + "-features", f_train, source.y_train, f_test, source.y_test)
    return _FEATURE_CACHE[key]


def make_stream(name: str, seed: int, args):
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.benchmarks.sources import LOADERS
    from avalanche_ext.benchmarks.streams import split_stream

    if name == "split_fmnist":
        source = subsample(LOADERS["fmnist"](None), args.fmnist_train_per_class, args.fmnist_test_per_class)
    elif args.features == "pretrained":
        source = LOADERS["mnist5k"](None)
    else:
        return build_benchmark(name, "class", seed=seed)
    if args.features == "pretrained":
        source = embed(source, name, args)
    return split_stream(source, name, "class", 5, seed)


def make_buffer(kind: str, per_class: int, n_classes: int):
    from avalanche.training.storage_policy import ClassBalancedBuffer, ReservoirSamplingBuffer

    from avalanche_ext.storage import ExStreamBuffer

    mem = per_class * n_classes
    if kind == "exstream":
        return ExStreamBuffer(mem, per_class=per_class)
    if kind == "exstream_ward":
        return ExStreamBuffer(mem, per_class=per_class, linkage="ward")
    if kind == "reservoir":
        return ReservoirSamplingBuffer(mem)
    if kind == "class_balanced":
        return ClassBalancedBuffer(mem, adaptive_size=False, total_num_classes=n_classes)
    raise ValueError(kind)


def streaming_run(name: str, kind: str, per_class: int, seed: int, args) -> dict:
    """Train once over the online stream with replay from ``kind``; return final accuracy."""
    from avalanche.training import Naive
    from avalanche.training.plugins import ReplayPlugin

    from avalanche_ext.models import build_network

    stream = make_stream(name, seed, args)
    torch.manual_seed(seed)
    np.random.seed(seed)
    import random

    random.seed(seed)
    # on pretrained features the network is the classifier above the frozen extractor
    layers = 1 if args.features == "pretrained" else 2
    model = build_network(stream.input_shape, stream.n_outputs, hidden=args.hidden, layers=layers)
    buffer = make_buffer(kind, per_class, stream.n_outputs)

    class Replay(ReplayPlugin):
        """Avalanche's replay, updating the buffer through ``post_adapt`` (not the deprecated ``update``)."""

        def after_training_exp(self, strategy, **kwargs):
            self.storage_policy.post_adapt(strategy, strategy.experience)

    if args.rehearsal == "buffer":
        from avalanche_ext.plugins import BufferRehearsalPlugin

        replay, mb_size = BufferRehearsalPlugin(buffer), args.buffer_batch
    else:
        replay = Replay(mem_size=buffer.max_size, batch_size_mem=args.batch_size_mem, storage_policy=buffer)
        mb_size = args.experience_size
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=mb_size,
                     train_epochs=1, eval_mb_size=1000, plugins=[replay], evaluator=None)
    t0 = time.perf_counter()
    n_mini = 0
    for exp in online_train_stream(stream, args.experience_size, seed=seed):
        strategy.train(exp)
        n_mini += 1
    train_s = time.perf_counter() - t0
    return {"benchmark": name, "features": args.features, "rehearsal": args.rehearsal, "buffer": kind, "per_class": per_class, "seed": seed,
            "acc": stream_accuracy(model, stream.test_stream, batch_size=1000), "train_s": train_s, "mini_experiences": n_mini,
            "stored": len(buffer.buffer)}


LABELS = {"exstream": "exstream (paper: L2)", "exstream_ward": "exstream, Ward", "reservoir": "reservoir",
          "class_balanced": "class-balanced"}


def table(results: list[dict]) -> str:
    """The Markdown table of ``results``: final accuracy (%) per benchmark, buffer and memory size, mean ± sample
    std over seeds; in each benchmark's column the best mean (at the shown precision) is bold."""
    ks = sorted({r["per_class"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    lines = [f"Final accuracy (%) over all classes, mean ± sample std over seeds {', '.join(map(str, seeds))}.", "",
             "| benchmark | buffer | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---|" + "---|" * len(ks)]
    for name in sorted({r["benchmark"] for r in results}, key=lambda b: (b != "split_mnist5k", b)):
        label = "split_fmnist (subsample)" if name == "split_fmnist" else name
        cells = {(kind, k): mean_std(r["acc"] for r in results
                                     if (r["benchmark"], r["buffer"], r["per_class"]) == (name, kind, k))
                 for kind in BUFFERS for k in ks}
        best = {k: max((round(100 * m, 1) for (_, kk), (m, _) in cells.items() if kk == k and not np.isnan(m)),
                       default=None) for k in ks}
        for kind in BUFFERS:
            if not any((r["benchmark"], r["buffer"]) == (name, kind) for r in results):
                continue
            row = []
            for k in ks:
                text = fmt(*cells[(kind, k)])
                bold = not np.isnan(cells[(kind, k)][0]) and round(100 * cells[(kind, k)][0], 1) == best[k]
                row.append(f"**{text}**" if bold else text)
            lines.append(f"| {label} | {LABELS[kind]} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = sorted({r["benchmark"] for r in results})
    fig, axes = plt.subplots(1, len(benches), figsize=(5.2 * len(benches), 4), squeeze=False)
    for ax, b in zip(axes[0], benches):
        for kind, marker in zip(BUFFERS, "oDs^"):
            rows = [r for r in results if r["benchmark"] == b and r["buffer"] == kind]
            ks = sorted({r["per_class"] for r in rows})
            if not ks:
                continue
            mean = [100 * np.mean([r["acc"] for r in rows if r["per_class"] == k]) for k in ks]
            std = [100 * np.nan_to_num(mean_std(r["acc"] for r in rows if r["per_class"] == k)[1]) for k in ks]
            ax.errorbar(ks, mean, yerr=std, marker=marker, capsize=3, label=kind.replace("_", "-"))
        n_seeds = len({r["seed"] for r in results if r["benchmark"] == b})
        ax.set_xscale("log")
        ax.minorticks_off()
        ks = sorted({r["per_class"] for r in results if r["benchmark"] == b})
        ax.set_xticks(ks)
        ax.set_xticklabels([str(k) for k in ks])
        ax.set_xlabel("memory: stored vectors per class")
        ax.set_ylabel("final accuracy (%)")
        space = "pretrained features" if any(r.get("features") == "pretrained" for r in results) else "pixels"
        protocol = "buffer pass" if all(r.get("rehearsal", "mixed") == "buffer" for r in results) else "mixed batches"
        ax.set_title(f"{b}, streaming class-IL\n{space}, {protocol} ({n_seeds} seed{'s' * (n_seeds > 1)})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmarks", nargs="+", default=["split_mnist5k", "split_fmnist"])
    p.add_argument("--per-class", nargs="+", type=int, default=[2, 5, 10, 20])
    p.add_argument("--buffers", nargs="+", default=list(BUFFERS), choices=BUFFERS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--experience-size", type=int, default=10)
    p.add_argument("--rehearsal", default="buffer", choices=["buffer", "mixed"],
                   help="buffer: insert, then one pass over the whole buffer (the paper's protocol); "
                        "mixed: Avalanche's ReplayPlugin, new samples plus --batch-size-mem replayed per step")
    p.add_argument("--buffer-batch", type=int, default=128, help="mini-batch size of a pass over the buffer")
    p.add_argument("--batch-size-mem", type=int, default=10, help="replayed samples per step (mixed)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--fmnist-train-per-class", type=int, default=600)
    p.add_argument("--fmnist-test-per-class", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--features", default="pixels", choices=["pixels", "pretrained"],
                   help="stream raw pixels, or embeddings of a frozen MLP 400-400 pretrained on other data "
                        "(Fashion-MNIST for split_mnist5k, the MNIST subset for split_fmnist), as the paper "
                        "streams CNN embeddings")
    p.add_argument("--out", default=None, help="results (JSON); runs already in it are not repeated "
                   "(default perf/results/exstream_memory_curve[_features][_mixed].json)")
    p.add_argument("--plot", default=None,
                   help="default docs/methods/exstream_memory_curve[_features][_mixed].png")
    args = p.parse_args(argv)
    suffix = ("" if args.features == "pixels" else "_features") + ("" if args.rehearsal == "buffer" else "_mixed")
    args.out = args.out or str(ROOT / "perf" / "results" / f"exstream_memory_curve{suffix}.json")
    args.plot = args.plot or str(ROOT / "docs" / "methods" / f"exstream_memory_curve{suffix}.png")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # ReplayPlugin calls buffer.update()
    warnings.filterwarnings("ignore", message="No loggers specified")
    json_path, png_path = Path(args.out), Path(args.plot)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(json_path.read_text()) if json_path.exists() else {"settings": {}, "runs": []}
    results: list[dict] = saved["runs"]
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "plot")}
    # a run of some buffers adds to the file: the settings name every buffer it holds
    settings["buffers"] = [b for b in BUFFERS if b in set(args.buffers) | {r["buffer"] for r in results}]
    done = {(r["benchmark"], r["buffer"], r["per_class"], r["seed"]) for r in results}
    for name in args.benchmarks:
        for seed in args.seeds:
            for k in args.per_class:
                for kind in args.buffers:
                    if (name, kind, k, seed) in done:
                        continue
                    r = streaming_run(name, kind, k, seed, args)
                    results.append(r)
                    print(f"{name:14s} {kind:15s} k={k:3d} seed={seed} acc={100 * r['acc']:.1f} "
                          f"({r['train_s']:.0f}s, {r['mini_experiences']} mini-exps)", flush=True)
                    json_path.write_text(json.dumps({"settings": settings, "runs": results}, indent=1))
    text = table(results)
    print("\n" + text)
    md_path = json_path.with_suffix(".md")
    md_path.write_text(text)
    plot(results, png_path)
    print(f"wrote {json_path}, {md_path} and {png_path}")


if __name__ == "__main__":
    main()
