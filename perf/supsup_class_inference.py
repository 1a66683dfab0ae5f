"""SupSup (GNs) in class-IL on split_mnist5k: how well each task-inference rule picks the mask, per sample.

Trains the ``supsup`` recipe in the class scenario (one mask per experience) exactly as
``avalanche-ext run`` does (``perf/_trained.py``), then runs every test (or validation)
sample through every learned mask and compares rules for choosing the mask of a sample.
With ``z_i`` the logits of mask ``i`` (``n`` real outputs, one per class of the stream, then
``extra_outputs`` superfluous ones) and ``C_i`` the two classes of task ``i``:

* ``entropy_all``: lowest entropy of ``softmax(z_i)`` over all outputs, the recipe's
  ``inference=exhaustive`` rule (class streams' default);
* ``oneshot``: the one-shot gradient of the entropy w.r.t. the superposition weights, per
  sample (``inference=oneshot``);
* ``entropy_real``: lowest entropy over the ``n`` real outputs;
* ``entropy_task``: lowest entropy over the task's own classes ``C_i`` (a two-class head,
  HNET+ENT's rule);
* ``energy_task``: largest ``logsumexp(z_i[C_i])``;
* ``entropy_rank``: largest rank of ``-H(softmax(z_i))`` among mask ``i``'s values on its own
  training data (a per-mask calibration to a common [0, 1] scale, ties broken by the entropy);
* ``lse_extra``: lowest ``logsumexp`` of the superfluous outputs (the paper's "G"
  objective evaluated per mask).

``entropy_all_per_batch`` is the per-batch protocol (``infer_per=batch``): Avalanche evaluates
one experience at a time in batches of ``eval_batch_size`` (512, more than an experience's
test images here), and each batch gets the mask with the lowest mean entropy.

Accuracy is reported twice for each rule: predicting the argmax over all outputs of the
chosen mask (what the recipe does) and over the chosen task's classes only (the task's head).

Each record also holds ``auroc_entropy_all_per_task``: for every task, the area under the ROC curve
of its own ``entropy_all`` score between its own evaluation samples and the other tasks' (1 means
the task's score alone tells its samples apart; 0.5 means it cannot).

Usage (validation split first; ``--test`` for the final numbers)::

    python perf/supsup_class_inference.py --seeds 0 --set extra_outputs=490
    python perf/supsup_class_inference.py --seeds 0 1 2 --test

``--out FILE`` also appends one JSON line per seed to FILE. The test record,
perf/results/supsup_class_inference_test.txt, is the second command's output.

The library is used as it is; the rules other than ``entropy_all`` and ``oneshot`` are
scored here (a prototype) because the plugin only implements those two.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from _trained import auroc, emit, parse, script_parser, stack, summarise, train_recipe
from avalanche_ext.functional.entropy import entropy
from avalanche_ext.functional.supsup import oneshot_inference


@torch.no_grad()
def mask_logits(model, x: torch.Tensor) -> torch.Tensor:
    """``(k, B, outputs)``: the logits of every frozen mask."""
    model.eval()
    return torch.stack([torch.cat([model(x[i:i + 512], task=t) for i in range(0, len(x), 512)])
                        for t in range(model.num_masks)])


def oneshot_tasks(model, x: torch.Tensor) -> torch.Tensor:
    out = []
    for i in range(0, len(x), 256):
        xb = x[i:i + 256]
        out.append(oneshot_inference(lambda a: model.superpose(xb, a), model.num_masks, len(xb), True)[0])
    return torch.cat(out)


def evaluate(model, stream, batch_size: int = 512) -> dict:
    n_real = stream.n_outputs
    classes = [sorted(int(c) for c in exp.classes_in_this_experience) for exp in stream.train_stream]
    x, y, e = stack(stream.test_stream)
    z = mask_logits(model, x)  # (k, B, O)
    k = z.shape[0]
    task_cls = torch.tensor(classes)  # (k, 2)
    zt = torch.stack([z[i][:, task_cls[i]] for i in range(k)])  # (k, B, 2)
    extra = z[..., n_real:]
    scores = {
        "entropy_all": -entropy(z),
        "entropy_real": -entropy(z[..., :n_real]),
        "entropy_task": -entropy(zt),
        "energy_task": torch.logsumexp(zt, -1),
    }
    if extra.shape[-1]:
        scores["lse_extra"] = -torch.logsumexp(extra, -1)
    # per-mask calibration on the mask's own training data: the rank of the test sample's
    # (negative) entropy among the training samples' (an empirical CDF on a common [0, 1] scale)
    own = []
    for i, exp in enumerate(stream.train_stream):
        xt, _, _ = stack([exp])
        with torch.no_grad():
            own.append((-entropy(torch.cat([model(xt[j:j + 512], task=i) for j in range(0, len(xt), 512)]))).sort().values)
    neg_h = scores["entropy_all"]
    scores["entropy_rank"] = torch.stack([torch.searchsorted(own[i], neg_h[i].contiguous()) / len(own[i])
                                          for i in range(k)]) + 1e-6 * neg_h / neg_h.abs().max()
    rows = torch.arange(len(y))
    chosen = {name: s.argmax(0) for name, s in scores.items()}
    with torch.enable_grad():
        chosen["oneshot"] = oneshot_tasks(model, x)
    # the per-batch protocol: Avalanche evaluates experience by experience in batches of
    # eval_batch_size; each batch gets the mask with the lowest mean entropy (infer_per=batch)
    batch_task = torch.empty_like(e)
    for i in range(k):
        idx = (e == i).nonzero().flatten()
        for j in range(0, len(idx), batch_size):
            b = idx[j:j + batch_size]
            batch_task[b] = (-scores["entropy_all"][:, b]).mean(1).argmin()
    chosen["entropy_all_per_batch"] = batch_task
    result: dict = {}
    for name, task in chosen.items():
        pred_all = z[task, rows].argmax(-1)
        pred_head = task_cls[task, zt[task, rows].argmax(-1)]
        result[f"acc_{name}"] = float((pred_all == y).float().mean())
        result[f"acc_head_{name}"] = float((pred_head == y).float().mean())
        result[f"task_acc_{name}"] = float((task == e).float().mean())
    # how well each task's own score separates its own samples from the other tasks' (1 = perfectly)
    result["auroc_entropy_all_per_task"] = [round(auroc(scores["entropy_all"][i][e == i], scores["entropy_all"][i][e != i]), 4)
                                      for i in range(len(scores["entropy_all"]))]
    result["acc_task_il"] = float((z[e, rows].argmax(-1) == y).float().mean())
    task = chosen["entropy_all"]
    result["confusion_entropy_all"] = [[int(((e == i) & (task == j)).sum()) for j in range(k)] for i in range(k)]
    return result


def main() -> None:
    parser = script_parser(__doc__)
    args, overrides = parse(parser)
    results = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        strategy, stream, hp = train_recipe("supsup", "split_mnist5k", "class", seed, validation=not args.test,
                                            overrides=overrides)
        res = {"split": "test" if args.test else "validation", "seed": seed, "overrides": overrides,
               **evaluate(strategy.model, stream, hp.eval_batch_size), "wall_s": round(time.perf_counter() - t0, 1)}
        results.append(res)
        emit(res, args.out)
    summarise(results, 24)


if __name__ == "__main__":
    main()
