"""Compare GNR with positive generative latent replay, CWR*, latent replay and naive; report replay memory.

Class-incremental split Fashion-MNIST, the backbone pretrained on the MNIST subset (never on
the stream) for every method but ``naive`` (from scratch). ``naive_pretrained`` and
``cwr_star`` are the registry's recipes with ``pretrain=mnist5k``; ``cwr_star_frozen``,
defined here only, is Avalanche's ``CWRStar`` over the pretrained backbone frozen from the
start (the ``cwr_star`` recipe trains the backbone during the first experience).

Usage (one training process, one thread):

    python perf/gnr_compare.py --seeds 0 1 2 --n-experiences 10
    python perf/gnr_compare.py --seeds 0 1 2 --n-experiences 5
    python perf/gnr_compare.py --seeds 0 --n-experiences 10 --validation   # what the settings were chosen on

Prints one JSON line per run and a summary table (mean +- std of the final average accuracy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from avalanche_ext.registry import register  # noqa: E402
from avalanche_ext.report.stats import fmt, mean_std  # noqa: E402

#: label -> (recipe, overrides); every method starts from the backbone pretrained on the MNIST subset.
METHODS = {
    "naive": ("naive", {}),
    "naive_pretrained": ("naive", {"pretrain": "mnist5k"}),
    "cwr_star": ("cwr_star", {"pretrain": "mnist5k"}),
    "cwr_star_frozen": ("cwr_star_frozen", {}),
    "latent_replay": ("latent_replay", {}),
    "ar1": ("ar1", {}),
    "generative_latent_replay": ("generative_latent_replay", {}),
    "gnr": ("gnr", {}),
}


@register(name="cwr_star_frozen", family="architectural", paper="Avalanche CWRStar over a pretrained frozen backbone",
          scenarios=("class",), per_benchmark={"split_fmnist": {"pretrain": "mnist5k"}},
          summary="Avalanche's CWR* on the off-stream pretrained feature extractor, frozen from the start")
def _cwr_star_frozen(ctx):
    from avalanche.training import CWRStar

    model = ctx.model(multihead=False)
    for p in model.features.parameters():
        p.requires_grad_(False)
    return CWRStar(model=model, optimizer=ctx.optimizer(model), cwr_layer_name="classifier", **ctx.strategy_args())


def memory_table(n_experiences: int) -> list[dict]:
    """Bytes of replay memory of each method on split_fmnist (as built by the recipes)."""
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.protocols import collect_memory_reports
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.registry import get_recipe

    stream = build_benchmark("split_fmnist", "class", n_experiences=n_experiences, seed=0)
    rows = []
    for name in ("latent_replay", "ar1", "gnr"):
        recipe = get_recipe(name)
        hp = recipe.resolve("split_fmnist", {"pretrain": "none"})
        strategy = recipe.build(RecipeContext(stream, hp, evaluator=None))
        rows.append({"recipe": name, **collect_memory_reports(strategy)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-experiences", type=int, default=10)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--validation", action="store_true", help="evaluate on a held-out part of the training data")
    ap.add_argument("--tracking-uri", default="sqlite:////tmp/gnr_compare.db")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], help="key=value applied to every method that has the key")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from avalanche_ext.registry import get_recipe
    from avalanche_ext.runner import RunConfig, run

    extra = dict(item.split("=", 1) for item in args.set)
    results: dict[str, list[float]] = {}
    for method in args.methods:
        recipe, fixed = METHODS[method]
        known = get_recipe(recipe).defaults("split_fmnist")
        overrides = {**fixed, **{k: v for k, v in extra.items() if k in known}}
        for seed in args.seeds:
            t0 = time.time()
            out = run(RunConfig(recipe=recipe, benchmark="split_fmnist", scenario="class", seed=seed,
                                n_experiences=args.n_experiences, overrides=overrides, validation=args.validation,
                                tracking_uri=args.tracking_uri, progress=False, threads=args.threads))
            results.setdefault(method, []).append(out["acc"])
            print(json.dumps({"method": method, "seed": seed, "n_experiences": args.n_experiences,
                              "validation": args.validation, "acc": out["acc"], "forgetting": out["forgetting"],
                              "final_row": out["acc_matrix"][-1], "train_s": round(out["train_s"], 1),
                              "wall_s": round(time.time() - t0, 1)}), flush=True)
    print(f"\nsplit_fmnist class-IL, {args.n_experiences} experiences, seeds {args.seeds}"
          f"{' (validation split)' if args.validation else ''}: final average accuracy")
    for method, accs in results.items():
        print(f"  {method:26s} {fmt(*mean_std(accs), digits=2):>15}  ({', '.join(f'{100 * a:.2f}' for a in accs)})")
    print("\nreplay memory (bytes):")
    for row in memory_table(args.n_experiences):
        print("  " + json.dumps(row))


if __name__ == "__main__":
    main()
