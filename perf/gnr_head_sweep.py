"""Fast sweep of GNR / positive generative replay head settings on cached latents (validation split).

With the backbone pretrained and frozen from the start, GNR and its positive control only
train the output layer, and the VAE sees the same real latents whatever the head does. This
script therefore computes the latents once, trains the continual VAE once per (seed, split),
and replays the head's training for many settings in seconds: the output layer is trained
exactly as ``CWRStarHead`` + ``GenerativeLatentReplayPlugin`` do (fresh Adam state per
experience, consolidated or zero old rows, stop-gradient on the negatives), with the same
functions (``avalanche_ext.functional.cwr`` and ``restrict_gradient``) but without the
Avalanche loop. It is how the per-benchmark settings of ``gnr`` and
``generative_latent_replay`` on ``split_fmnist`` were chosen.

    python perf/gnr_head_sweep.py --seeds 0 1 2 --n-experiences 10
    python perf/gnr_head_sweep.py --seeds 0 1 2 --n-experiences 5

``--passes P`` repeats the sequence of experiences P times, each class's images split into P
disjoint parts (classes come back with new images, as in CORe50's NIC protocols, the
paper's main setting); ``--only`` restricts the run to some settings by label prefix;
``--first-classes N`` gives the first experience N classes and deals the others into the
remaining experiences (the paper's protocols start with a larger first experience);
``--temperatures`` runs every replay setting with each VAE sampling temperature;
``--vae-epochs`` trains the generator for each given number of epochs per experience (fewer
epochs, a poorer generator) and prints how faithful its samples are: the share of generated
latents that a linear probe trained on the real latents gives the label they were generated
for. ``--stream mnist5k`` runs the same on split_mnist5k, with the backbone pretrained on
Fashion-MNIST instead (its 400 images per class give the VAE far less data). The head trains
for the benchmark's epochs and minibatch size (split_fmnist 2 x 128, split_mnist5k 4 x 32).

Evaluates on the validation split (``carve_validation``: 15 % of the training images held
out) unless ``--test`` is given.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from avalanche_ext.benchmarks.sources import LOADERS  # noqa: E402
from avalanche_ext.benchmarks.streams import carve_validation  # noqa: E402
from avalanche_ext.functional.cwr import consolidate, consolidated, start_weights  # noqa: E402
from avalanche_ext.functional.negative_replay import restrict_gradient  # noqa: E402
from avalanche_ext.hparams import COMMON_PER_BENCHMARK  # noqa: E402
from avalanche_ext.models import build_network  # noqa: E402
from avalanche_ext.models.latent_vae import LatentVAE, train_continually  # noqa: E402
from avalanche_ext.report.stats import fmt, mean_std  # noqa: E402
from avalanche_ext.training.pretrain import pretrain_features  # noqa: E402

#: (label, settings) pairs swept by default.
GRID = [
    ("cwr* (zero rows, mean shift), no replay", dict(old_rows="zero", mean_shift=True, lr=1e-2)),
    *[(f"negative lr={lr:g} R={r}", dict(kind="neg", lr=lr, R=r)) for lr in (3e-3, 1e-2, 3e-2) for r in (128, 256)],
    ("negative lr=1e-2 R=128 mean shift", dict(kind="neg", lr=1e-2, mean_shift=True)),
    ("negative lr=1e-3 zero rows + mean shift", dict(kind="neg", lr=1e-3, old_rows="zero", mean_shift=True)),
    *[(f"positive lr={lr:g} R={r}", dict(kind="pos", lr=lr, R=r)) for lr in (1e-3, 3e-3, 1e-2, 3e-2) for r in (128, 256)],
]


#: stream data set -> the data set its backbone is pretrained on (never the stream's own).
PRETRAIN_ON = {"fmnist": "mnist5k", "mnist5k": "fmnist"}


def latents(seed: int, test: bool, stream: str = "fmnist"):
    src = LOADERS[stream]()
    if not test:
        src = carve_validation(src)
    torch.manual_seed(seed)
    model = build_network((1, 28, 28), 10)
    pretrain_features(model, PRETRAIN_ON[stream], epochs=5, seed=seed, input_shape=(1, 28, 28))
    model.eval()
    with torch.no_grad():
        ztr = torch.cat([model.features(src.x_train[i : i + 2000]) for i in range(0, len(src.x_train), 2000)])
        zte = torch.cat([model.features(src.x_test[i : i + 2000]) for i in range(0, len(src.x_test), 2000)])
    return ztr, src.y_train, zte, src.y_test


def experiences(ytr, seed: int, n_experiences: int, passes: int = 1, first: int = 0) -> list[torch.Tensor]:
    """Training indices of every experience. The seed-shuffled classes are dealt into
    ``n_experiences`` groups; with ``passes`` > 1 the whole sequence is repeated ``passes``
    times (each time in a new order, as in CORe50's NIC protocols), every class's images split
    into ``passes`` disjoint parts, one per appearance."""
    order = np.random.RandomState(seed).permutation(10)
    # with ``first``, a first experience of that many classes, the others dealt into the rest
    lead = [order[:first]] if first else []
    groups = [list(map(int, g)) for g in lead + np.array_split(order[first:], n_experiences - len(lead))]
    if passes == 1:
        return [torch.nonzero(torch.isin(ytr, torch.tensor(g))).flatten() for g in groups]
    rs = np.random.RandomState(seed + 1)
    parts = {c: np.array_split(rs.permutation(np.flatnonzero(ytr.numpy() == c)), passes) for c in range(10)}
    exps = []
    for p in range(passes):
        for gi in (range(len(groups)) if p == 0 else rs.permutation(len(groups))):
            exps.append(torch.as_tensor(np.sort(np.concatenate([parts[c][p] for c in groups[gi]]))))
    return exps


def vae_snapshots(ztr, ytr, exps, seed: int, epochs: int = 10):
    torch.manual_seed(seed)
    vae = LatentVAE(ztr.shape[1], 10)
    snaps = []
    for e, ix in enumerate(exps):
        train_continually(vae, ztr[ix], ytr[ix], epochs=epochs, seed=seed + e)
        snaps.append(copy.deepcopy(vae.state_dict()))
    return snaps


def load_vae(snap, dim: int) -> LatentVAE:
    """A frozen VAE (eval mode) from one of :func:`vae_snapshots`."""
    vae = LatentVAE(dim, 10)
    vae.load_state_dict(snap)
    return vae.eval()


def fit_probe(data, seed: int) -> tuple[torch.nn.Linear, float]:
    """A linear classifier fit on the real training latents, and its accuracy on the real
    evaluation latents (the scale for :func:`label_fidelity`)."""
    ztr, ytr, zte, yte = data
    torch.manual_seed(seed)
    probe = torch.nn.Linear(ztr.shape[1], 10)
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.cross_entropy(probe(ztr), ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return probe, float((probe(zte).argmax(1) == yte).float().mean())


@torch.no_grad()
def label_fidelity(probe, snap, dim: int, seed: int, per_class: int = 500) -> float:
    """Share of the VAE's samples that ``probe`` assigns to the class they were generated for."""
    z, y = load_vae(snap, dim).sample(10 * per_class, classes=list(range(10)), generator=torch.Generator().manual_seed(seed))
    return float((probe(z).argmax(1) == y).float().mean())


def run_head(data, exps, snaps, *, kind=None, old_rows="consolidated", mean_shift=False, lr=1e-2, R=128,
             epochs=2, batch_size=128, seed=0, temperature=1.0):
    ztr, ytr, zte, yte = data
    d = ztr.shape[1]
    torch.manual_seed(seed)
    cw, seen, past = torch.zeros(10, d), torch.zeros(10, dtype=torch.bool), torch.zeros(10)
    for e, ix in enumerate(exps):
        x, y = ztr[ix], ytr[ix]
        cls = sorted(set(y.tolist()))
        old = [c for c in range(10) if seen[c] and c not in cls]
        sample = None
        if kind and old:
            vae = load_vae(snaps[e - 1], d)
            sample = lambda n, vae=vae, old=old: vae.sample(n, classes=old, temperature=temperature)  # noqa: E731
        rows = list(cls) + (old if kind == "pos" and sample else [])
        W = start_weights(cw, seen, rows, old_rows=old_rows)
        W.requires_grad_(True)
        opt = torch.optim.Adam([W], lr=lr)
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), batch_size):
                idx = perm[i : i + batch_size]
                xb, yb, b = x[idx], y[idx], len(idx)
                if sample is not None:
                    zr, yr = sample(R)
                    xb, yb = torch.cat([xb, zr]), torch.cat([yb, yr])
                out = restrict_gradient(xb @ W.T, slice(None), rows)  # CWR*: only the rows trained now learn
                if kind == "neg" and sample is not None:
                    out = restrict_gradient(out, slice(b, None), cls)  # GNR: the generated rows are negatives only
                loss = F.cross_entropy(out, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        counts = {c: float((y == c).sum()) for c in cls}
        for c in (old if kind == "pos" and sample else []):
            counts[c] = R * math.ceil(len(x) / batch_size) / len(old)
        cw, seen, past = consolidate(cw, seen, past, W.detach(), {c: counts[c] for c in rows}, mean_shift=mean_shift)
    return float(((zte @ consolidated(cw, seen).T).argmax(1) == yte).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-experiences", type=int, default=10)
    ap.add_argument("--passes", type=int, default=1,
                    help="repeat the class sequence this many times on disjoint parts of each class (NIC-like)")
    ap.add_argument("--only", nargs="*", default=None, help="run only the settings whose label starts with one of these")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0],
                    help="sampling temperatures of the VAE (spread of its code) to run every setting with")
    ap.add_argument("--first-classes", type=int, default=0,
                    help="classes of the first experience (0: deal all classes evenly), the rest dealt into "
                         "the other n-experiences - 1")
    ap.add_argument("--vae-epochs", type=int, nargs="+", default=[10],
                    help="generator training epochs per experience (fewer: a poorer generator)")
    ap.add_argument("--stream", choices=sorted(PRETRAIN_ON), default="fmnist",
                    help="the stream's data set (split_fmnist or split_mnist5k); the backbone is pretrained on "
                         "the other one")
    ap.add_argument("--test", action="store_true", help="evaluate on the test split instead of validation")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # the head trains for the benchmark's epochs and minibatch size, as the recipes do
    common = COMMON_PER_BENCHMARK[f"split_{args.stream}"]
    loop = {"epochs": common["epochs"], "batch_size": common["batch_size"]}
    several = len(args.vae_epochs) > 1  # then the generator's label fidelity is measured too
    results: dict[str, list[float]] = {}
    for seed in args.seeds:
        data = latents(seed, args.test, args.stream)
        exps = experiences(data[1], seed, args.n_experiences, args.passes, args.first_classes)
        if several:
            probe, real = fit_probe(data, seed)
            results.setdefault("probe accuracy on real latents", []).append(real)
            print(f"seed {seed} probe accuracy on real latents: {100 * real:.2f}", flush=True)
        for vae_epochs in args.vae_epochs:
            snaps = vae_snapshots(data[0], data[1], exps, seed, epochs=vae_epochs)
            tag = f" vae_epochs={vae_epochs}" if several else ""
            if several:
                fid = label_fidelity(probe, snaps[-1], data[0].shape[1], seed)
                results.setdefault(f"label fidelity of the samples{tag}", []).append(fid)
                print(f"seed {seed} label fidelity{tag}: {100 * fid:.2f}", flush=True)
            for label, kw in GRID:
                if args.only is not None and not label.startswith(tuple(args.only)):
                    continue
                temperatures = args.temperatures if kw.get("kind") else [1.0]  # no replay: nothing to sample
                for t in temperatures:
                    name = label + (f" T={t:g}" if len(temperatures) > 1 else "") + tag
                    acc = run_head(data, exps, snaps, seed=seed, temperature=t, **loop, **kw)
                    results.setdefault(name, []).append(acc)
                    print(f"seed {seed} {name}: {100 * acc:.2f}", flush=True)
    split = "test" if args.test else "validation"
    n = args.n_experiences * args.passes
    print(f"\nsplit_{args.stream} class-IL, {n} experiences ({args.passes} pass(es) of {args.n_experiences}), "
          f"{split} split, seeds {args.seeds}")
    for label, accs in results.items():
        print(f"  {label:42s} {fmt(*mean_std(accs), digits=2):>15}")


if __name__ == "__main__":
    main()
