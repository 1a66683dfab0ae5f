"""How much of the shared network HAT's tasks hold, task after task (the recipe's settings).

Usage: python perf/hat_capacity.py [--benchmark split_mnist5k] [--seed 0]
Prints, after each task, the fraction of shared weights held by the learned tasks
(mean of min(a_i, a_j) over all shared weights) and the fraction of units with attention > 0.5.
"""

import argparse

import torch

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.plugins.hat import HATPlugin
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe
from avalanche_ext.runner import make_evaluator, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="split_mnist5k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    recipe = get_recipe("hat")
    hp = recipe.resolve(args.benchmark)
    stream = build_benchmark(args.benchmark, "task", seed=args.seed)
    seed_everything(args.seed)
    strategy = recipe.build(RecipeContext(stream, hp, make_evaluator([]), seed=args.seed))
    plugin = next(p for p in strategy.plugins if isinstance(p, HATPlugin))
    for exp in stream.train_stream:
        strategy.train(exp)
        units = torch.cat(plugin.cumulative)
        print(f"after task {exp.current_experience}: shared weights held {plugin.capacity[-1]:.1%}, "
              f"units held {(units > 0.5).float().mean().item():.1%}")


if __name__ == "__main__":
    main()
