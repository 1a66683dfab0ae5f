"""HNET side by side with the reference package ``hypnettorch`` (PyPI) on one task-IL stream.

Same data, target network (MLP ``hidden`` x ``layers``), chunked hypernetwork (chunk size,
chunk / task embedding sizes, hidden layers), beta, optimizer (Adam), batch size, epochs
and per-epoch batch order. The runs:

* ``ours/avalanche``: :class:`HyperNetClassifier` + :class:`HypernetworkPlugin` trained by
  Avalanche's ``Naive`` (the way the ``hnet`` recipe runs; Avalanche's own data loader,
  one optimizer for the whole stream).
* ``ours/loop``: the same model and regularizer in a plain PyTorch loop.
* ``hypnettorch/loop``: ``hypnettorch.mnets.MLP`` + ``hypnettorch.hnets.ChunkedHMLP`` +
  ``hypnettorch.utils.hnet_regularizer.calc_fix_target_reg`` in the same loop, with the
  hypernetwork as its constructor initialises it, and ``hypnettorch/loop+hyperfan`` after
  its ``apply_chunked_hyperfan_init(mnet=mnet)`` (the initialisation it recommends for
  chunked hypernetworks), and ``hypnettorch/loop+ours-init`` started from exactly the
  initial parameters of ``ours/loop`` (copied): the same computation, so the accuracies
  should agree closely and the times compare the implementations alone.

Both loops use a fresh Adam per task over the shared parameters and the current task's
embedding. Prints average accuracy, forgetting and training time (wall and CPU) of each,
and the ratios to the first hypnettorch run.

Install the reference without touching the project environment::

    pip install --no-deps --target /tmp/hnet-lib hypnettorch

Usage (the page's record: one JSON line per seed, then the table from them)::

    for S in 0 1 2; do python perf/hnet_vs_hypnettorch.py --benchmark split_mnist5k --seed $S --threads 1 \\
        --out perf/results/hnet_vs_hypnettorch.jsonl; done
    python perf/hnet_vs_hypnettorch.py --render
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

REFERENCE_DIR = os.environ.get("HYPNETTORCH_DIR", "/tmp/hnet-lib")


def load_hypnettorch():
    """Import hypnettorch from ``REFERENCE_DIR`` (or the environment); ``None`` if absent."""
    if os.path.isdir(REFERENCE_DIR) and REFERENCE_DIR not in sys.path:
        sys.path.insert(0, REFERENCE_DIR)
    try:
        from hypnettorch.hnets import ChunkedHMLP
        from hypnettorch.mnets import MLP
        from hypnettorch.utils import hnet_regularizer
    except ImportError:
        return None
    return MLP, ChunkedHMLP, hnet_regularizer


def stream_tensors(stream) -> tuple[list, list]:
    """``[(x, y, task)]`` per experience for the train and test streams."""

    def collect(exps):
        out = []
        for exp in exps:
            loader = torch.utils.data.DataLoader(exp.dataset, batch_size=4096, shuffle=False)
            xs, ys = [], []
            for batch in loader:
                xs.append(batch[0])
                ys.append(batch[1])
            out.append((torch.cat(xs), torch.cat(ys), int(exp.task_labels[0])))
        return out

    return collect(stream.train_stream), collect(stream.test_stream)


def batches(n: int, batch_size: int, seed: int, task: int, epoch: int):
    g = torch.Generator().manual_seed(seed * 1_000_003 + task * 1009 + epoch)
    order = torch.randperm(n, generator=g)
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def accuracy(predict: Callable[[torch.Tensor, int], torch.Tensor], data) -> list[float]:
    accs = []
    with torch.no_grad():
        for x, y, t in data:
            accs.append(float((predict(x, t).argmax(1) == y).float().mean()))
    return accs


def summarize(after_own: list[float], final: list[float]) -> dict[str, float]:
    n = len(final)
    forgetting = sum(after_own[i] - final[i] for i in range(n - 1)) / max(1, n - 1)
    return {"acc": sum(final) / n, "forgetting": forgetting, "acc_per_task": [round(a, 4) for a in final]}


def train_loop(train, test, *, params_for_task, loss_for_batch, predict, epochs, batch_size, lr, seed,
               before_task=None) -> dict[str, Any]:
    """The shared plain loop: per task, a fresh Adam; returns accuracies and timings."""
    after_own, wall, cpu = [], 0.0, 0.0
    for task_index, (x, y, t) in enumerate(train):
        w0, c0 = time.perf_counter(), time.process_time()
        if before_task is not None:
            before_task(task_index, t)
        opt = torch.optim.Adam(params_for_task(t), lr=lr)
        for epoch in range(epochs):
            for idx in batches(len(y), batch_size, seed, task_index, epoch):
                opt.zero_grad()
                loss_for_batch(x[idx], y[idx], t, task_index).backward()
                opt.step()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        after_own.append(accuracy(predict, [test[task_index]])[0])
    return {**summarize(after_own, accuracy(predict, test)), "train_wall_s": wall, "train_cpu_s": cpu}


def run_ours_loop(stream, train, test, hp, seed) -> dict[str, Any]:
    from avalanche_ext.functional.hnet_reg import hnet_output_regularizer, store_targets

    model = our_model(stream, hp, seed)
    state: dict[str, Any] = {"targets": {}, "learned": []}

    def before_task(index, t):
        state["targets"] = store_targets(model.hnet, state["learned"])
        state["learned"].append(t)
        model.register_task(t)
        model.train()

    def params_for_task(t):
        return [*model.hnet.theta().values(), model.hnet.embedding(t)]

    def loss_for_batch(x, y, t, index):
        loss = F.cross_entropy(model(x, t), y)
        if state["targets"]:
            loss = loss + hnet_output_regularizer(model.hnet, state["targets"], hp.beta)
        return loss

    def predict(x, t):
        model.eval()
        return model(x, t)

    return train_loop(train, test, params_for_task=params_for_task, loss_for_batch=loss_for_batch,
                      predict=predict, epochs=hp.epochs, batch_size=hp.batch_size, lr=hp.lr, seed=seed,
                      before_task=before_task)


def our_model(stream, hp, seed: int):
    from avalanche_ext.models import HyperNetClassifier, build_network

    torch.manual_seed(seed)
    target = build_network(stream.input_shape, stream.n_outputs, hidden=hp.hidden, layers=hp.layers)
    return HyperNetClassifier(target, embedding_dim=hp.embedding_dim, chunk_size=hp.chunk_size,
                              chunk_embedding_dim=hp.chunk_embedding_dim, hidden=list(hp.hnet_hidden),
                              activation=hp.hnet_activation)


@torch.no_grad()
def copy_our_init(hnet, stream, hp, seed: int, tasks: list) -> None:
    """Give hypnettorch's hypernetwork exactly the initial parameters ``ours/loop`` starts from.

    Ours feeds ``[e_t, c_i]`` to the MLP, hypnettorch ``[c_i, e_t]``: the first layer's
    columns are swapped accordingly. Checks that both then generate the same weights.
    """
    model = our_model(stream, hp, seed)
    for t in tasks:  # the embeddings ``ours/loop`` draws, in the same order
        model.hnet.add_task(t)
    theta = model.hnet.theta()
    n_layers = len(model.hnet.layers)
    ours = []
    for i in range(n_layers):
        w = theta[f"layers.{i}.weight"]
        if i == 0:
            te = model.hnet.embedding_dim
            w = torch.cat([w[:, te:], w[:, :te]], dim=1)
        ours += [w, theta[f"layers.{i}.bias"]]
    ours.append(theta["chunk_embeddings"])
    for dst, src in zip(hnet.unconditional_params, ours):
        dst.copy_(src)
    for dst, t in zip(hnet.conditional_params, tasks):
        dst.copy_(model.hnet.embedding(t))
    generated = torch.cat([w.reshape(-1) for w in hnet.forward(cond_id=0)])
    diff = float((generated - model.hnet(tasks[0])).abs().max())
    if diff > 1e-5:
        raise AssertionError(f"copied initialisation generates different weights (max diff {diff})")


def run_hypnettorch_loop(ref, stream, train, test, hp, seed, init: str = "default") -> dict[str, Any]:
    MLP, ChunkedHMLP, hreg = ref
    torch.manual_seed(seed)
    mnet = MLP(n_in=stream.input_size, n_out=stream.n_outputs, hidden_layers=[hp.hidden] * hp.layers,
               no_weights=True, verbose=False)
    act = {"relu": torch.nn.ReLU(), "elu": torch.nn.ELU(), "tanh": torch.nn.Tanh()}[hp.hnet_activation]
    hnet = ChunkedHMLP(mnet.param_shapes, chunk_size=hp.chunk_size, chunk_emb_size=hp.chunk_embedding_dim,
                       cond_in_size=hp.embedding_dim, layers=list(hp.hnet_hidden), num_cond_embs=len(train),
                       activation_fn=act, verbose=False)
    if init == "hyperfan":
        hnet.apply_chunked_hyperfan_init(mnet=mnet)
    elif init == "ours":
        copy_our_init(hnet, stream, hp, seed, [tr[2] for tr in train])
    state: dict[str, Any] = {"targets": None}

    def before_task(index, t):
        state["targets"] = hreg.get_current_targets(index, hnet) if index > 0 else None
        hnet.train()

    def params_for_task(t):
        index = [tr[2] for tr in train].index(t)
        return [*hnet.unconditional_params, hnet.conditional_params[index]]

    def loss_for_batch(x, y, t, index):
        loss = F.cross_entropy(mnet.forward(x.flatten(1), weights=hnet.forward(cond_id=index)), y)
        if index > 0:
            loss = loss + hp.beta * hreg.calc_fix_target_reg(hnet, index, targets=state["targets"])
        return loss

    task_index = {tr[2]: i for i, tr in enumerate(train)}

    def predict(x, t):
        hnet.eval()
        return mnet.forward(x.flatten(1), weights=hnet.forward(cond_id=task_index[t]))

    return train_loop(train, test, params_for_task=params_for_task, loss_for_batch=loss_for_batch,
                      predict=predict, epochs=hp.epochs, batch_size=hp.batch_size, lr=hp.lr, seed=seed,
                      before_task=before_task)


def run_ours_avalanche(stream, test, hp, seed) -> dict[str, Any]:
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin

    from avalanche_ext.plugins import HypernetworkPlugin

    model = our_model(stream, hp, seed)
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=hp.lr),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=hp.batch_size, train_epochs=hp.epochs,
                     evaluator=EvaluationPlugin(loggers=[]), plugins=[HypernetworkPlugin(beta=hp.beta)])

    def predict(x, t):
        model.eval()
        return model(x, t)

    after_own, wall, cpu = [], 0.0, 0.0
    for i, exp in enumerate(stream.train_stream):
        w0, c0 = time.perf_counter(), time.process_time()
        strategy.train(exp)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        after_own.append(accuracy(predict, [test[i]])[0])
    return {**summarize(after_own, accuracy(predict, test)), "train_wall_s": wall, "train_cpu_s": cpu}


#: Rows of the page's table: (label, run name) in the order shown; the first is the reference of the ratios.
TABLE_ROWS = (
    ("hypnettorch, started from our initial parameters (reference)", "hypnettorch/loop+ours-init"),
    ("ours, same plain loop", "ours/loop"),
    ("ours, Avalanche `Naive` + `HypernetworkPlugin`", "ours/avalanche"),
    ("hypnettorch, its default initialisation", "hypnettorch/loop"),
    ("hypnettorch, its chunked hyperfan initialisation", "hypnettorch/loop+hyperfan-init"),
)


def markdown(records: list[dict]) -> str:
    """The page's table from the JSON lines of several seeds (one line per seed, the latest per seed wins)."""
    from avalanche_ext.report.stats import mean_spread

    by_seed = {r["seed"]: r for r in records}
    seeds = sorted(by_seed)
    ref_name = TABLE_ROWS[0][1]
    first = by_seed[seeds[0]]
    lines = [f"Written by `python perf/hnet_vs_hypnettorch.py --render` from "
             f"`perf/results/hnet_vs_hypnettorch.jsonl` ({first['benchmark']}, task-IL, {first['epochs']} epochs, "
             f"seeds {', '.join(map(str, seeds))}, one thread); accuracy in %, mean ± sample std over seeds.", "",
             f"| run | accuracy (seeds {', '.join(map(str, seeds))}) | mean | training CPU time / reference |",
             "|---|---|---|---|"]
    for label, name in TABLE_ROWS:
        accs = [100 * by_seed[s]["results"][name]["acc"] for s in seeds]
        ratios = [by_seed[s]["results"][name]["train_cpu_s"] / by_seed[s]["results"][ref_name]["train_cpu_s"]
                  for s in seeds]
        m, sd = mean_spread(accs)
        rm, _ = mean_spread(ratios)
        ratio = "1" if name == ref_name else f"{', '.join(f'{x:.2f}' for x in ratios)} (mean {rm:.2f})"
        lines.append(f"| {label} | {', '.join(f'{a:.1f}' for a in accs)} | {m:.1f} ± {sd:.1f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="split_mnist5k")
    parser.add_argument("--n-experiences", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-avalanche", action="store_true", help="only the two plain loops")
    parser.add_argument("--reference-init", choices=("default", "hyperfan", "ours", "all"), default="all",
                        help="hypnettorch's initialisation: its constructor's, its chunked hyperfan init, "
                             "exactly ours (copied), or all three")
    parser.add_argument("--out", default=None, help="append this seed's JSON line to this file")
    parser.add_argument("--render", action="store_true",
                        help="write the page's table from --record to --md, without training")
    parser.add_argument("--record", default="perf/results/hnet_vs_hypnettorch.jsonl")
    parser.add_argument("--md", default="perf/results/hnet_vs_hypnettorch.md")
    args = parser.parse_args(argv)
    if args.render:
        with open(args.record) as f:
            text = markdown([json.loads(line) for line in f if line.strip()])
        with open(args.md, "w") as f:
            f.write(text)
        print(text)
        return 0

    ref = load_hypnettorch()
    if ref is None:
        print(f"SKIPPED: hypnettorch is not installed (looked in {REFERENCE_DIR} and the environment); "
              "install it with: pip install --no-deps --target /tmp/hnet-lib hypnettorch")
        return 0

    torch.set_num_threads(args.threads)
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.registry import get_recipe

    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    hp = get_recipe("hnet").resolve(args.benchmark, overrides)
    stream = build_benchmark(args.benchmark, "task", n_experiences=args.n_experiences, seed=args.seed)
    train, test = stream_tensors(stream)

    results = {}
    inits = ("ours", "default", "hyperfan") if args.reference_init == "all" else (args.reference_init,)
    for init in inits:
        name = "hypnettorch/loop" + ("" if init == "default" else f"+{init}-init")
        results[name] = run_hypnettorch_loop(ref, stream, train, test, hp, args.seed, init)
    results["ours/loop"] = run_ours_loop(stream, train, test, hp, args.seed)
    if not args.skip_avalanche:
        results["ours/avalanche"] = run_ours_avalanche(stream, test, hp, args.seed)

    ref_res = next(iter(results.values()))
    print(f"{args.benchmark} task-IL, {stream.n_experiences} tasks, target MLP {hp.layers}x{hp.hidden}, "
          f"hnet {list(hp.hnet_hidden)} chunk {hp.chunk_size}, beta {hp.beta}, {hp.epochs} epochs, "
          f"batch {hp.batch_size}, seed {args.seed}, threads {args.threads}")
    print(f"ratios against {next(iter(results))}")
    print(f"{'run':31s} {'acc':>7s} {'forget':>7s} {'wall s':>8s} {'cpu s':>8s} {'wall/ref':>9s} {'cpu/ref':>8s}")
    for name, r in results.items():
        print(f"{name:31s} {r['acc']:7.4f} {r['forgetting']:7.4f} {r['train_wall_s']:8.1f} {r['train_cpu_s']:8.1f} "
              f"{r['train_wall_s'] / ref_res['train_wall_s']:9.3f} {r['train_cpu_s'] / ref_res['train_cpu_s']:8.3f}")
    line = json.dumps({"benchmark": args.benchmark, "seed": args.seed, "epochs": hp.epochs, "results": results})
    print(line)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
