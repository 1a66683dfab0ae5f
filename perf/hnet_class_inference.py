"""HNET+ENT in class-IL on split_mnist5k: how well each task-inference rule picks the task, per sample.

Trains the ``hnet`` recipe (class scenario, so ``HyperNetClassifier(task_inference=True)``)
exactly as ``avalanche-ext run`` does (``perf/_trained.py``), then scores every test (or
validation) sample with the per-task outputs of every learned task and compares rules for
choosing the task of a sample. Each task's head is its two classes' logits ``z_t``:

* ``entropy``: the recipe's rule (HNET+ENT), lowest entropy of ``softmax(z_t)``; for a
  two-class head this is the largest margin ``|z_t1 - z_t2|``;
* ``energy``: largest ``logsumexp(z_t)``;
* ``entropy_cal``: lowest entropy of ``softmax(z_t / T_t)``, with ``T_t`` the temperature
  that minimises the negative log-likelihood of task ``t``'s own *training* data (every
  task's head calibrated on its own data only, as a continual learner can);
* ``margin_norm``: largest ``|z_t1 - z_t2| / m_t``, ``m_t`` the median margin of task
  ``t``'s head on its own training data;
* ``margin_rank``: largest rank of ``|z_t1 - z_t2|`` among task ``t``'s margins on its own
  training data (the empirical CDF, a per-task calibration to a common [0, 1] scale; ties,
  e.g. above every training margin, broken by the raw margin);
* ``entropy_mc_dropout`` (with ``--set dropout=...``): lowest entropy of the head's softmax
  averaged over 8 dropout masks (Monte-Carlo dropout);
* ``entropy_open``: lowest entropy over *all* the target's outputs under task ``t``'s
  weights (meaningful with ``--open-heads``, where each task trains every output).

``--open-heads`` trains a prototype subclass, ``OpenHeadHyperNet``: each task's loss is the
cross-entropy over all the target's outputs (the other classes' outputs, plus
``--extra-outputs`` superfluous ones, are pushed down on the task's own data, as SupSup's
superfluous neurons are), where ``HyperNetClassifier`` masks every output but the task's
classes; predictions still come from the chosen task's own classes.

It prints, per seed, class-IL accuracy with each rule, the task-inference accuracy and the
task-inference confusion matrix of the ``entropy`` rule, and the task-IL accuracy (true
task given) for reference; with several seeds, the mean and sample std (ddof=1).

Each record also holds ``auroc_entropy_per_task``: for every task, the area under the ROC curve
of its own ``entropy`` score between its own evaluation samples and the other tasks' (1 means
the task's score alone tells its samples apart; 0.5 means it cannot).

Usage (validation split first; ``--test`` for the final numbers)::

    python perf/hnet_class_inference.py --seeds 0 --set epochs=16
    python perf/hnet_class_inference.py --seeds 0 --open-heads --extra-outputs 90
    python perf/hnet_class_inference.py --seeds 0 1 2 --test --set epochs=16

``--out FILE`` also appends one JSON line per seed to FILE. The test record,
perf/results/hnet_class_inference_test.txt, is the last command's output.

The recipe and library are used as they are; the rules other than ``entropy`` are scored
here (a prototype) because ``HyperNetClassifier.infer`` only implements ``entropy``.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from _trained import auroc, emit, parse, script_parser, stack, summarise, train_recipe
from avalanche.training import Naive
from avalanche_ext.models import build_network
from avalanche_ext.models.hypernet import HyperNetClassifier
from avalanche_ext.plugins.hypernet import HypernetworkPlugin


class OpenHeadHyperNet(HyperNetClassifier):
    """Prototype: each task trains all of the target's outputs (the other classes' outputs, and any
    superfluous ones, are pushed down on the task's own data); a task's prediction still comes from
    its own classes. ``HyperNetClassifier`` masks the other outputs in training too."""

    def forward_single_task(self, x, task_label):
        task = int(task_label)
        if self.training:
            return self.target(x, self.weights(task), task)
        return super().forward_single_task(x, task_label)


def open_head_build(extra_outputs: int):
    """The hnet recipe's build with :class:`OpenHeadHyperNet` and ``extra_outputs`` more target outputs."""

    def build(ctx):
        hp, stream = ctx.hp, ctx.stream
        target = build_network(stream.input_shape, stream.n_outputs + extra_outputs, arch=hp.arch, hidden=hp.hidden,
                               layers=hp.layers, dropout=hp.dropout, multihead=False)
        model = OpenHeadHyperNet(target, task_inference=True, embedding_dim=hp.embedding_dim,
                                 chunk_size=hp.chunk_size, chunk_embedding_dim=hp.chunk_embedding_dim,
                                 hidden=list(hp.hnet_hidden), activation=hp.hnet_activation)
        plugin = HypernetworkPlugin(beta=hp.beta, lookahead=hp.lookahead)
        return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))

    return build


@torch.no_grad()
def raw_logits(model, x: torch.Tensor) -> torch.Tensor:
    """``(T, B, outputs)``: every output of the target network under each learned task's weights."""
    model.eval()
    return torch.stack([torch.cat([model.target(x[i:i + 512], model.weights(t), t) for i in range(0, len(x), 512)])
                        for t in model.tasks])


@torch.no_grad()
def mc_dropout_probs(model, x: torch.Tensor, samples: int = 8) -> torch.Tensor:
    """``(T, B, 2)``: each task's softmax over its two classes, averaged over ``samples`` dropout masks."""
    model.eval()
    model.target.train()  # dropout on; the hypernetwork's weights are deterministic either way
    try:
        out = []
        for t in model.tasks:
            w = model.weights(t)
            cls = model.task_classes[t]
            p = torch.stack([torch.cat([model.target(x[i:i + 512], w, t)[:, cls].softmax(-1)
                                        for i in range(0, len(x), 512)]) for _ in range(samples)]).mean(0)
            out.append(p)
        return torch.stack(out)
    finally:
        model.target.eval()


def head_logits(model, x: torch.Tensor) -> torch.Tensor:
    """``(T, B, 2)``: the logits of each learned task's two classes."""
    raw = raw_logits(model, x)
    return torch.stack([raw[i][:, model.task_classes[t]] for i, t in enumerate(model.tasks)])


def fit_temperature(z: torch.Tensor, y: torch.Tensor) -> float:
    """The temperature (log grid 0.05 .. 20) with the lowest NLL of ``softmax(z / T)`` against ``y``."""
    grid = torch.logspace(math.log10(0.05), math.log10(20.0), 121)
    nll = torch.stack([F.cross_entropy(z / t, y) for t in grid])
    return float(grid[nll.argmin()])


def softmax_entropy(z: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(z, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def evaluate(model, stream) -> dict:
    tasks = model.tasks
    classes = torch.tensor([model.task_classes[t] for t in tasks])  # (T, 2)
    # per-task calibration on each task's own training data
    temps, margins, own = [], [], []
    for t, exp in zip(tasks, stream.train_stream):
        x, y, _ = stack([exp])
        z = head_logits(model, x)[tasks.index(t)]
        local = (y.unsqueeze(1) == classes[tasks.index(t)].unsqueeze(0)).float().argmax(1)
        temps.append(fit_temperature(z, local))
        own.append((z[:, 0] - z[:, 1]).abs().sort().values)
        margins.append(float(own[-1].median()))
    x, y, e = stack(stream.test_stream)
    raw = raw_logits(model, x)  # (T, B, outputs)
    z = torch.stack([raw[i][:, model.task_classes[t]] for i, t in enumerate(tasks)])  # (T, B, 2)
    margin = (z[..., 0] - z[..., 1]).abs()
    scores = {
        "entropy": -softmax_entropy(z),
        "entropy_open": -softmax_entropy(raw),
        "energy": torch.logsumexp(z, dim=-1),
        "entropy_cal": -softmax_entropy(z / torch.tensor(temps).view(-1, 1, 1)),
        "margin_norm": margin / torch.tensor(margins).view(-1, 1),
        # share of the task's own training samples with a smaller margin (an empirical CDF, per task)
        "margin_rank": torch.stack([torch.searchsorted(own[i], margin[i].contiguous()) / len(own[i])
                                    for i in range(len(tasks))]) + 1e-6 * margin / margin.max(),
    }
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.target._template.modules()):
        p = mc_dropout_probs(model, x)
        scores["entropy_mc_dropout"] = (p * p.clamp_min(1e-12).log()).sum(-1)
    rows = torch.arange(len(y))
    result: dict = {"temperatures": [round(t, 3) for t in temps], "median_margins": [round(m, 2) for m in margins]}
    for name, s in scores.items():
        task = s.argmax(0)
        pred = classes[task, z[task, rows].argmax(-1)]
        result[f"acc_{name}"] = float((pred == y).float().mean())
        result[f"task_acc_{name}"] = float((task == e).float().mean())
    # how well each task's own score separates its own samples from the other tasks' (1 = perfectly)
    result["auroc_entropy_per_task"] = [round(auroc(scores["entropy"][i][e == i], scores["entropy"][i][e != i]), 4)
                                      for i in range(len(scores["entropy"]))]
    pred_true = classes[e, z[e, rows].argmax(-1)]
    result["acc_task_il"] = float((pred_true == y).float().mean())
    task = scores["entropy"].argmax(0)
    result["confusion_entropy"] = [[int(((e == i) & (task == j)).sum()) for j in range(len(tasks))]
                                   for i in range(len(tasks))]
    return result


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--open-heads", action="store_true",
                        help="prototype: train every output of the target for each task (OpenHeadHyperNet)")
    parser.add_argument("--extra-outputs", type=int, default=0, help="with --open-heads: superfluous target outputs")
    args, overrides = parse(parser)
    results = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        strategy, stream, hp = train_recipe("hnet", "split_mnist5k", "class", seed, validation=not args.test,
                                            overrides=overrides,
                                            build=open_head_build(args.extra_outputs) if args.open_heads else None)
        res = {"split": "test" if args.test else "validation", "seed": seed, "overrides": overrides,
               "open_heads": args.open_heads, "extra_outputs": args.extra_outputs,
               **evaluate(strategy.model, stream), "wall_s": round(time.perf_counter() - t0, 1)}
        results.append(res)
        emit(res, args.out)
    summarise(results, 22)


if __name__ == "__main__":
    main()
