"""Supermasks in Superposition: one binary mask per task over fixed random signed-constant weights.

The recipe's network is the default one (``--set arch=... hidden=... layers=...``) turned
into a supermask network; only the per-task scores are trained, and each finished task is
kept as a bit-packed mask. Scenarios:

* ``task``: GG, the test task label picks the mask (``mode=auto`` or ``gg``).
* ``domain`` / ``class``: GNs, every training experience gets a new mask and the task is
  inferred at test from the output entropy (``mode=auto`` or ``gns``). With
  ``inference=auto`` the plugin tries every mask (``exhaustive``) while the masks' classes
  are disjoint (``class`` streams) and uses the one-shot gradient otherwise (``domain``).
* any scenario with ``mode=gnu``: no task identity at all; a new mask is allocated when
  no learned mask is confident on the new experience.
"""

from avalanche.training import Naive

from avalanche_ext.models import build_supsup_network
from avalanche_ext.plugins import SupSupPlugin
from avalanche_ext.registry import register


def resolve_mode(mode: str, scenario: str) -> str:
    """``auto`` -> ``gg`` on task-incremental streams, ``gns`` elsewhere; ``gg`` needs task labels."""
    if mode == "auto":
        return "gg" if scenario == "task" else "gns"
    if mode == "gg" and scenario != "task":
        raise ValueError(f"supsup: mode=gg needs task labels at test time, which the {scenario!r} scenario does not "
                         "give; use the task scenario (one task label per experience), or mode=gns (infer the task) "
                         "or mode=gnu")
    return mode


@register(
    name="supsup",
    family="architectural",
    paper="Wortsman et al., Supermasks in Superposition, NeurIPS 2020, arXiv:2006.14769",
    scenarios=("task", "domain", "class"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    hparams={
        "mode": "auto",
        "mask_mode": "threshold",
        "sparsity": 0.5,
        "extra_outputs": 90,
        "inference": "auto",
        "infer_per": "sample",
        "gnu_threshold": 0.2,
        "gnu_probe": 256,
    },
    # small data sets: the scores need larger steps to settle within a few epochs
    per_benchmark={"split_digits": {"lr": 1e-2}, "permuted_digits": {"lr": 1e-2}},
    summary="a bit-packed supermask per task over fixed random weights; the task is inferred from output entropy",
    choices={"mode": ("auto", "gg", "gns", "gnu"), "inference": ("auto", "oneshot", "binary", "exhaustive")},
    amp=False,  # no mixed precision: task inference differentiates the output entropy in evaluation
)
def build(ctx):
    hp = ctx.hp
    mode = resolve_mode(hp.mode, ctx.scenario)
    model = build_supsup_network(ctx.model(multihead=False), mask_mode=hp.mask_mode, sparsity=hp.sparsity,
                                 seed=ctx.seed, extra_outputs=hp.extra_outputs)
    plugin = SupSupPlugin(
        mode,
        task_ids="labels" if ctx.scenario == "task" or mode == "gnu" else "experiences",
        inference=hp.inference,
        infer_per=hp.infer_per,
        gnu_threshold=hp.gnu_threshold,
        gnu_probe=hp.gnu_probe,
    )
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))
