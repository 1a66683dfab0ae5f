"""Why Avalanche's ``GenerativeReplay`` falls short on split_mnist5k class-IL, measured against our DGR plugin.

Trains each variant as ``avalanche-ext run generative_replay`` would (same stream, epochs,
batch size, seeding: ``perf/_trained.py``) and reports the final class-IL accuracy (mean over
experiences of the test/validation accuracy) and what the final generator draws: the share of
1,000 of its samples that a reference MLP (trained jointly on all the stream's training
images) assigns to each task's classes.

Variants (the Avalanche ones replace the recipe's ``build``; a prototype of the old recipe):

* ``avalanche``: the recipe before this change: Avalanche's ``GenerativeReplay`` with
  ``MlpVAE(nhid=16)``, Adam 0.01 (weight decay 1e-4), the VAE trained for the solver's 4
  epochs, as many replayed samples as real ones in each batch, averaged together (weight
  1/2 whatever the number of tasks), the generator trained on the same 1/2 mixture;
* ``avalanche_increasing``: the same with ``increasing_replay_size=True`` for solver and
  generator (``t-1`` replayed batches per real batch: the replayed share becomes ``(t-1)/t``);
* ``avalanche_big``: a 100-d code, Adam 1e-3, 40 VAE epochs (1,000 updates of 32 per
  experience, our plugin's generator budget), replay weight still 1/2;
* ``avalanche_big_increasing``: both changes;
* ``dgr``: this package's recipe (``DeepGenerativeReplayPlugin`` + ``ImageVAE``), with ``--set``.

Usage::

    python perf/generative_replay_avalanche.py --variants avalanche avalanche_increasing avalanche_big \\
        avalanche_big_increasing dgr --seeds 0 --out perf/results/generative_replay_avalanche_val.jsonl

(validation split; ``--test`` for the test split). The committed record was written by
this command run a few variants at a time, hence its order of rows.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _trained import emit, stack, train_recipe
from avalanche_ext.models import build_network


def avalanche_build(*, nhid: int, lr: float, vae_epochs: int, increasing: bool, weight_decay: float = 1e-4):
    """A ``build(ctx)`` with Avalanche's ``GenerativeReplay`` and ``MlpVAE`` (the recipe before this change)."""

    def build(ctx):
        from avalanche.models import MlpVAE
        from avalanche.models.generator import VAE_loss
        from avalanche.training import GenerativeReplay, VAETraining
        from avalanche.training.plugins import GenerativeReplayPlugin

        hp = ctx.hp
        vae = MlpVAE(tuple(ctx.stream.input_shape), nhid=nhid, device=ctx.device)
        generator = VAETraining(
            model=vae, optimizer=torch.optim.Adam(vae.parameters(), lr=lr, weight_decay=weight_decay),
            criterion=VAE_loss, train_mb_size=hp.batch_size, train_epochs=vae_epochs,
            eval_mb_size=hp.eval_batch_size, device=ctx.device,
            plugins=[GenerativeReplayPlugin(increasing_replay_size=increasing)],
        )
        model = ctx.model()
        return GenerativeReplay(model=model, optimizer=ctx.optimizer(model), generator_strategy=generator,
                                increasing_replay_size=increasing, **ctx.strategy_args())

    return build


VARIANTS = {
    "avalanche": avalanche_build(nhid=16, lr=0.01, vae_epochs=4, increasing=False),
    "avalanche_increasing": avalanche_build(nhid=16, lr=0.01, vae_epochs=4, increasing=True),
    "avalanche_big": avalanche_build(nhid=100, lr=1e-3, vae_epochs=40, increasing=False),
    "avalanche_big_increasing": avalanche_build(nhid=100, lr=1e-3, vae_epochs=40, increasing=True),
    "dgr": None,
}


def reference_classifier(stream, seed: int) -> torch.nn.Module:
    """An MLP 400-400 trained jointly on all the stream's training images (4 epochs, Adam 1e-3)."""
    torch.manual_seed(seed)
    torch.set_grad_enabled(True)
    x, y, _ = stack(stream.train_stream)
    net = build_network(stream.input_shape, stream.n_outputs)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(4):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    torch.set_grad_enabled(False)
    return net.eval()


@torch.no_grad()
def generator_samples(strategy, n: int = 1000) -> torch.Tensor:
    """``n`` samples of the final generator, in the input space the solver sees."""
    if not hasattr(strategy, "generator_strategy"):  # the dgr recipe: DeepGenerativeReplayPlugin's generator
        plugin = next(p for p in strategy.plugins if hasattr(p, "train_generator"))
        return plugin.generator.sample(n)
    vae = strategy.generator_strategy.model
    vae.eval()
    return vae.generate(n)


@torch.no_grad()
def evaluate(strategy, stream, seed: int) -> dict:
    model = strategy.model.eval()
    x, y, e = stack(stream.test_stream)
    pred = model(x).argmax(1)
    per_exp = [float((pred[e == i] == y[e == i]).float().mean()) for i in range(int(e.max()) + 1)]
    classes = [sorted(int(c) for c in exp.classes_in_this_experience) for exp in stream.train_stream]
    ref = reference_classifier(stream, seed)
    ref_acc = float((ref(x).argmax(1) == y).float().mean())
    samples = generator_samples(strategy)
    drawn = ref(samples).argmax(1)
    share = [float(sum((drawn == c).float().mean() for c in cls)) for cls in classes]
    return {"acc": sum(per_exp) / len(per_exp), "acc_per_exp": per_exp, "generator_task_share": share,
            "generator_pixel_range": [float(samples.min()), float(samples.max())], "reference_acc": ref_acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--test", action="store_true", help="evaluate on the test split (default: validation)")
    parser.add_argument("--set", nargs="*", default=[], help="overrides of the dgr recipe, key=value")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append one JSON line per run to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.variants:
        for seed in args.seeds:
            t0 = time.perf_counter()
            overrides = dict(kv.split("=", 1) for kv in args.set) if name == "dgr" else {}
            strategy, stream, _ = train_recipe("generative_replay", "split_mnist5k", "class", seed,
                                               validation=not args.test, overrides=overrides, build=VARIANTS[name])
            res = {"variant": name, "split": "test" if args.test else "validation", "seed": seed,
                   "overrides": overrides, **evaluate(strategy, stream, seed),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            emit(res, args.out)


if __name__ == "__main__":
    main()
