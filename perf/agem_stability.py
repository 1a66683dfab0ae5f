"""A-GEM's spread over seeds on split_mnist5k, per scenario and setting (mean ± sample std of the final accuracy).

Each configuration is ``label=key=value,key=value`` over the ``agem`` recipe (``label=`` alone: the
recipe's defaults). ``before`` is the setting the committed report ran with (Adam, lr 1e-3, memory
256 per experience, reference gradient on 64 memory samples), spelled out so that it stays
reproducible whatever the defaults become.

Validation (every command in perf/results/agem_stability_validation.txt), e.g.::

    python perf/agem_stability.py --validation --scenarios class --configs lr1e-4=lr=0.0001 lr1e-4_s256=lr=0.0001,sample_size=256

Test, the recipe's settings now in class-IL (perf/results/agem_stability_test.txt)::

    python perf/agem_stability.py --scenarios class --configs now=
"""

from __future__ import annotations

import argparse

from _runs import run_seeds, summary

BEFORE = "before=optimizer=adam,lr=0.001,patterns_per_exp=256,sample_size=64"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--validation", action="store_true", help="evaluate on the validation split (to choose settings)")
    p.add_argument("--scenarios", nargs="+", default=["class", "task", "domain"])
    p.add_argument("--configs", nargs="+", default=[BEFORE, "now="], help="label=key=value,...")
    args = p.parse_args()
    rows = []
    for scenario in args.scenarios:
        for item in args.configs:
            label, _, sets = item.partition("=")
            overrides = dict(kv.split("=", 1) for kv in sets.split(",") if kv)
            rows += run_seeds(label, "agem", benchmark="split_mnist5k", scenario=scenario, seeds=args.seeds,
                              overrides=overrides, validation=args.validation)
    summary(rows)


if __name__ == "__main__":
    main()
