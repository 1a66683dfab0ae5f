"""The replay recipe's batch_size_mem: how many memory samples join each training mini-batch."""

import pytest
from avalanche.core import SupervisedPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe
from avalanche_ext.runner import make_evaluator, seed_everything


class BatchSizes(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def before_forward(self, strategy, **kwargs):
        self.sizes.append(len(strategy.mb_x))


@pytest.mark.parametrize("batch_size_mem, expected", [(None, 2 * 32), (5, 32 + 5)])
def test_batch_size_mem_sets_the_replayed_share_of_each_mini_batch(batch_size_mem, expected):
    recipe = get_recipe("replay")
    hp = recipe.resolve("split_digits", {"epochs": 1, "batch_size": 32, "batch_size_mem": batch_size_mem})
    stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
    seed_everything(0)
    strategy = recipe.build(RecipeContext(stream, hp, make_evaluator([]), seed=0))
    sizes = BatchSizes()
    strategy.plugins.append(sizes)
    strategy.train(stream.train_stream[0])
    assert max(sizes.sizes) == 32  # nothing in memory yet
    sizes.sizes.clear()
    strategy.train(stream.train_stream[1])
    assert max(sizes.sizes) == expected
