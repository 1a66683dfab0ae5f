"""SupSup (GNs) on 10 permuted tasks: per-sample task inference and domain-IL vs task-IL accuracy.

For each permuted benchmark of the catalogue (``permuted_digits``, ``permuted_mnist5k``,
``permuted_fmnist``) it trains the ``supsup`` recipe in the domain scenario on 10
experiences, exactly as ``avalanche-ext run supsup --scenario domain --n-experiences 10``
does (``perf/_trained.py``), then infers the mask of every test (or validation) sample with:

* ``oneshot``: one gradient of the output entropy w.r.t. the superposition weights (the
  plugin's ``inference=oneshot``, the domain default);
* ``oneshot_g``: one gradient of the paper's "G" objective, ``logsumexp`` of the outputs
  with the real outputs detached (only the superfluous outputs carry the gradient;
  reference code ``se_oneshot_g_minimization``);
* ``binary``: the plugin's ``inference=binary`` (``ceil(log2 k)`` entropy gradients);
* ``exhaustive``: every mask, lowest entropy (``inference=exhaustive``).

It reports the share of samples sent to their own task's mask, the domain-IL accuracy
with each rule (GNs), and the task-IL accuracy of the same masks given the true task (GG,
what ``--scenario task`` measures: SupSup trains the same masks in both scenarios).

Usage (validation split first; ``--test`` for the final numbers)::

    python perf/supsup_permuted_inference.py --benchmarks permuted_digits --seeds 0 --set lr=0.001 \
        --out perf/results/supsup_permuted_inference_val.jsonl
    python perf/supsup_permuted_inference.py --benchmarks permuted_digits --seeds 0 1 2 --test \
        --set lr=0.001 extra_outputs=490

perf/results/supsup_permuted_inference_val.jsonl holds validation runs of the first form, one per
benchmark, seed and setting (each row names its benchmark, seed and ``overrides``);
perf/results/supsup_permuted_inference_test.txt is the second command's output.

``--set key=value`` overrides recipe hyper-parameters (e.g. ``extra_outputs=490``);
``--eval-per-exp N`` scores the first N evaluation samples of each experience only (meant for
``permuted_fmnist``, whose 10 experiences hold 9,000 validation / 10,000 test images each).
The ``oneshot_g`` rule is scored here (a prototype); the others are the library's.
"""

from __future__ import annotations

import time

import torch

from _trained import emit, parse, script_parser, stack, summarise, train_recipe
from avalanche_ext.functional.entropy import entropy
from avalanche_ext.functional.supsup import binary_inference, oneshot_inference


def g_oneshot(model, x: torch.Tensor, n_real: int) -> torch.Tensor:
    """Per-sample one-shot inference with the "G" objective (gradient through the superfluous outputs only)."""
    k = model.num_masks
    alphas = torch.full((len(x), k), 1.0 / k, requires_grad=True)
    with torch.enable_grad():
        logits = model.superpose(x, alphas)
        g = torch.cat([logits[:, :n_real].detach(), logits[:, n_real:]], dim=1).logsumexp(1).sum()
        (grad,) = torch.autograd.grad(g, alphas)
    return grad.argmin(1)


def infer(model, x: torch.Tensor, n_real: int) -> dict[str, torch.Tensor]:
    k = model.num_masks
    out: dict[str, list] = {"oneshot": [], "oneshot_g": [], "binary": [], "exhaustive": []}
    model.eval()
    for i in range(0, len(x), 256):
        xb = x[i:i + 256]

        def sup(a, xb=xb):
            return model.superpose(xb, a)

        out["oneshot"].append(oneshot_inference(sup, k, len(xb), True)[0])
        out["binary"].append(binary_inference(sup, k, len(xb), True))
        if n_real < model(xb[:1], task=0).shape[1]:
            out["oneshot_g"].append(g_oneshot(model, xb, n_real))
        with torch.no_grad():
            out["exhaustive"].append(torch.stack([entropy(model(xb, task=t)) for t in range(k)], 1).argmin(1))
    return {name: torch.cat(v) for name, v in out.items() if v}


def evaluate(model, stream, per_exp: int = 0) -> dict:
    x, y, e = stack(stream.test_stream)
    if per_exp:  # the first per_exp samples of every experience
        keep = torch.cat([(e == i).nonzero().flatten()[:per_exp] for i in range(int(e.max()) + 1)])
        x, y, e = x[keep], y[keep], e[keep]
    n_real = stream.n_outputs
    with torch.no_grad():
        model.eval()
        gg = torch.cat([model(x[i:i + 512], task=e[i:i + 512]) for i in range(0, len(x), 512)])
    result = {"acc_task_il": float((gg.argmax(1) == y).float().mean())}
    for name, task in infer(model, x, n_real).items():
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 512], task=task[i:i + 512]) for i in range(0, len(x), 512)])
        result[f"task_acc_{name}"] = float((task == e).float().mean())
        result[f"acc_{name}"] = float((logits.argmax(1) == y).float().mean())
    return result


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--benchmarks", nargs="+", default=["permuted_digits", "permuted_mnist5k", "permuted_fmnist"])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--eval-per-exp", type=int, default=0,
                        help="score only the first N evaluation samples of each experience (0: all)")
    args, overrides = parse(parser)
    for bench in args.benchmarks:
        results = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            strategy, stream, _ = train_recipe("supsup", bench, "domain", seed, validation=not args.test,
                                               overrides=overrides, n_experiences=args.tasks)
            res = {"benchmark": bench, "split": "test" if args.test else "validation", "seed": seed,
                   "tasks": args.tasks, "overrides": overrides, "eval_per_exp": args.eval_per_exp,
                   **evaluate(strategy.model, stream, args.eval_per_exp),
                   "wall_s": round(time.perf_counter() - t0, 1)}
            results.append(res)
            emit(res, args.out)
        summarise(results, 20, prefix=f"{bench:17s} ")


if __name__ == "__main__":
    main()
