"""What an ExStream memory holds after a pass over split_mnist5k (raw pixels).

Streams the 4,000 training images (class-IL order, each experience shuffled with seed 0)
through ``ExStreamBuffer(per_class=k, linkage=...)`` and prints, for each class, the largest cluster
counts, how many stored points are single samples, and how far those single samples lie
from the class mean compared with an average training sample of the class.

Usage::

    python perf/exstream_buffer_composition.py --per-class 20                   # the paper's rule
    python perf/exstream_buffer_composition.py --per-class 20 --linkage ward
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avalanche_ext.benchmarks import build_benchmark  # noqa: E402
from avalanche_ext.benchmarks.online import online_train_stream  # noqa: E402
from avalanche_ext.storage import ExStreamBuffer  # noqa: E402
from avalanche_ext.storage.cluster_store import LINKAGES  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="split_mnist5k")
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--linkage", default="centroid", choices=LINKAGES)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    stream = build_benchmark(args.benchmark, "class", seed=0)
    buf = ExStreamBuffer(args.per_class * stream.n_outputs, per_class=args.per_class, linkage=args.linkage)
    xs, ys = [], []
    for exp in online_train_stream(stream, 10, seed=0):
        items = [exp.dataset[i] for i in range(len(exp.dataset))]
        x = torch.stack([it[0] for it in items])
        y = torch.tensor([int(it[1]) for it in items])
        buf.add(x, y)
        xs.append(x.reshape(len(x), -1).numpy())
        ys.append(y.numpy())
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    ratios = []
    print(f"{args.benchmark}, k={args.per_class}, {args.linkage} linkage: class | largest counts | single samples | "
          f"distance to class mean: singles / all samples")
    for (_, c), g in sorted(buf.groups.items()):
        counts = g.weights()
        mu = xs[ys == c].mean(0)
        singles = g.points()[counts == 1]
        d_single = np.linalg.norm(singles - mu, axis=1).mean() if len(singles) else float("nan")
        d_all = np.linalg.norm(xs[ys == c] - mu, axis=1).mean()
        ratios.append(d_single / d_all)
        print(f"  {c}: {sorted(counts.tolist(), reverse=True)[:4]} | {int((counts == 1).sum())} | "
              f"{d_single:.2f} / {d_all:.2f} = {d_single / d_all:.2f}")
    print(f"singles lie {np.nanmin(ratios):.2f}-{np.nanmax(ratios):.2f}x as far from the class mean as an average sample")
    merged = np.concatenate([g.weights()[g.weights() > 1] for g in buf.groups.values()])
    print(f"merged clusters hold {merged.min()}-{merged.max()} samples (median {np.median(merged):.0f})")


if __name__ == "__main__":
    main()
