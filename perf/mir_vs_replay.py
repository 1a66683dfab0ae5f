"""MIR against random replay at the same memory, in MIR's streaming protocol and in the offline one.

Class-IL split_mnist5k; every configuration holds ``--mem`` samples and replays ``--mem-batch``
memory samples per step:

* ``replay``: the ``replay`` recipe (Avalanche's ReplayPlugin over an experience-balanced buffer;
  in the streaming protocol each online mini-experience is one of its groups);
* ``er``: the ``mir`` recipe with ``subsample == batch_size_mem``: every candidate is replayed, so
  retrieval is random; memory (class-balanced reservoir), loss and schedule are MIR's own, only the
  choice of the memory batch differs (the ER baseline of the MIR paper);
* ``mir``: the ``mir`` recipe (``subsample`` candidates, the ``--mem-batch`` most interfered replayed);
* ``mir_as_is``: Avalanche 0.6.0's ``MIR`` strategy, as the recipe used to build it (defined here only).

Protocols: ``--online`` (each sample seen once, mini-experiences of ``--online-size``, epochs 1) or
offline (whole experiences, the benchmark's epochs and batch size). ``--set key=value`` applies to
every configuration (e.g. ``optimizer=sgd``, ``lr=0.1``).

Validation (perf/results/mir_vs_replay_{online,offline}_validation.txt): online, replay, er and mir
each tried Adam lr 1e-3 and SGD lr 0.1 (memory batch 10, 50 candidates); offline (Adam lr 1e-3),
replay and mir tried memory batch 10 (mir: 50 candidates) and 32 (160); er, the control, runs at
mir's chosen sizes. E.g.::

    python perf/mir_vs_replay.py --online --validation --seeds 0 1 2 --only er mir --set optimizer=sgd --set lr=0.1
    python perf/mir_vs_replay.py --validation --seeds 0 1 2 --mem 1000 --mem-batch 32 --subsample 160 --only replay mir

Test, each configuration with its best validation setting (perf/results/mir_vs_replay_offline_test.txt is
the last command's output, perf/results/mir_vs_replay_online_test.txt the first two's; the recipes' own
settings, as on validation, so with ``AVALANCHE_EXT_NO_SELECTED=1``)::

    AVALANCHE_EXT_NO_SELECTED=1 python perf/mir_vs_replay.py --online --seeds 0 1 2 --only replay mir mir_as_is
    AVALANCHE_EXT_NO_SELECTED=1 python perf/mir_vs_replay.py --online --seeds 0 1 2 --only er --set optimizer=sgd --set lr=0.1
    python perf/mir_vs_replay.py --seeds 0 1 2 --mem 1000 --mem-batch 32 --subsample 160
"""

from __future__ import annotations

import argparse

from _runs import run_seeds, summary

from avalanche_ext.registry import register


@register(name="mir_as_is", family="replay", paper="-", scenarios=("class",),
          hparams={"mem_size": 500, "subsample": 50, "batch_size_mem": 10},
          summary="Avalanche 0.6.0's MIR strategy, as the mir recipe used to build it")
def _mir_as_is(ctx):
    from avalanche.training import MIR

    hp = ctx.hp
    model = ctx.model()
    return MIR(model=model, optimizer=ctx.optimizer(model), mem_size=hp.mem_size, subsample=hp.subsample,
               batch_size_mem=hp.batch_size_mem, **ctx.strategy_args())


def configurations(mem: int, mem_batch: int, subsample: int) -> dict[str, tuple[str, dict]]:
    same = {"mem_size": mem, "batch_size_mem": mem_batch}
    return {
        "replay": ("replay", same),
        "er": ("mir", {**same, "subsample": mem_batch}),
        "mir": ("mir", {**same, "subsample": subsample}),
        "mir_as_is": ("mir_as_is", {**same, "subsample": subsample}),
    }


def buffer_groups(mem_sizes: list[int], online_size: int, validation: bool) -> None:
    """What the replay recipe's experience-balanced buffer keeps when each mini-experience is a group."""
    import math

    from avalanche.training.storage_policy import ExperienceBalancedBuffer

    from avalanche_ext.benchmarks import build_benchmark

    stream = build_benchmark("split_mnist5k", "class", seed=0, validation=validation)
    groups = sum(math.ceil(len(exp.dataset) / online_size) for exp in stream.train_stream)
    for mem in mem_sizes:
        lens = ExperienceBalancedBuffer(mem, adaptive_size=True).get_group_lengths(groups)
        print(f"replay buffer, memory {mem}, {groups} mini-experiences: each keeps {min(lens)}-{max(lens)} samples; "
              f"{sum(1 for n in lens if n == 0)} keep none (the last ones)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--validation", action="store_true", help="evaluate on the validation split (to choose settings)")
    p.add_argument("--online", action="store_true", help="the streaming protocol")
    p.add_argument("--online-size", type=int, default=10)
    p.add_argument("--mem", type=int, default=500)
    p.add_argument("--mem-batch", type=int, default=10)
    p.add_argument("--subsample", type=int, default=50)
    p.add_argument("--only", nargs="+", default=None, help="run only these configurations")
    p.add_argument("--set", action="append", default=[], help="key=value for every configuration")
    args = p.parse_args()
    common = dict(kv.split("=", 1) for kv in args.set)
    print(f"split_mnist5k class-IL, {'streaming (mini-experiences of %d)' % args.online_size if args.online else 'offline'}"
          f", memory {args.mem}, memory batch {args.mem_batch}, settings {common or 'recipe defaults'}")
    if args.online:
        buffer_groups(sorted({200, args.mem}), args.online_size, args.validation)
    rows = []
    for label, (recipe, overrides) in configurations(args.mem, args.mem_batch, args.subsample).items():
        if args.only and label not in args.only:
            continue
        rows += run_seeds(label, recipe, benchmark="split_mnist5k", scenario="class", seeds=args.seeds,
                          overrides={**overrides, **common}, validation=args.validation, online=args.online,
                          online_size=args.online_size)
    summary(rows)


if __name__ == "__main__":
    main()
