"""The pnn and packnet recipes in task-IL: which columns PNN grows and freezes, and PackNet's per-task heads."""

import pytest
import torch

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe
from avalanche_ext.runner import make_evaluator, seed_everything


def _strategy(name, n_experiences=3, **overrides):
    recipe = get_recipe(name)
    hp = recipe.resolve("split_digits", {"epochs": 1, **overrides})
    stream = build_benchmark("split_digits", "task", n_experiences=n_experiences, seed=0)
    seed_everything(0)
    return recipe.build(RecipeContext(stream, hp, make_evaluator([]), seed=0)), stream


def _frozen(column):
    return all(not p.requires_grad for p in column.parameters())


def test_pnn_evaluating_untrained_tasks_adds_no_column():
    strategy, stream = _strategy("pnn")
    strategy.train(stream.train_stream[0])
    strategy.eval(stream.test_stream)  # every task, two of them not trained yet
    for layer in strategy.model.layers:
        assert layer.num_columns == 1 and not _frozen(layer.columns[0])
    strategy.train(stream.train_stream[1])
    for layer in strategy.model.layers:
        assert layer.num_columns == 2
        assert _frozen(layer.columns[0]) and not _frozen(layer.columns[1])
        assert layer.task_to_module_idx == {0: 0, 1: 1}


def _accs(strategy, stream):
    accs = strategy.eval(stream.test_stream)
    return [v for k, v in sorted(accs.items()) if k.startswith("Top1_Acc_Exp/eval_phase/test_stream")]


def test_pnn_keeps_a_trained_task_exactly_and_learns_the_next_on_its_own_column():
    strategy, stream = _strategy("pnn", n_experiences=2)
    strategy.train(stream.train_stream[0])
    first = _accs(strategy, stream)[0]
    strategy.train(stream.train_stream[1])
    after = _accs(strategy, stream)
    assert after[0] == first  # task 0's column is frozen and its head untouched
    assert after[1] > 0.8


def test_packnet_prunes_the_features_and_gives_each_task_its_own_head():
    strategy, stream = _strategy("packnet", n_experiences=2)
    for exp in stream.train_stream:
        strategy.train(exp)
    model = strategy.model
    pruned = {name for name, _ in model.wrappee.named_parameters()}
    assert pruned and not any("classifier" in name for name in pruned)  # the heads are outside PackNet's masks
    heads = model.classifier.classifiers
    assert set(heads) == {"0", "1"}
    assert not torch.equal(heads["0"].classifier.weight, heads["1"].classifier.weight)
    assert all(acc > 0.8 for acc in _accs(strategy, stream))


def test_packnet_refuses_a_prune_proportion_outside_0_1():
    with pytest.raises(ValueError, match="prune_proportion"):
        _strategy("packnet", prune_proportion=1.0)


def test_packnet_runs_the_plugins_it_is_given():
    """Avalanche 0.6.0's PackNet nests its plugins in a list, where no hook reached them."""
    from avalanche.core import SupervisedPlugin

    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.registry import get_recipe

    class Count(SupervisedPlugin):
        iterations = 0

        def after_training_iteration(self, strategy, *args, **kwargs):
            Count.iterations += 1

    stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)
    recipe = get_recipe("packnet")
    strategy = recipe.build(RecipeContext(stream, recipe.resolve("split_digits", {"epochs": 1}), None,
                                          plugins=[Count()]))
    assert not any(isinstance(p, list) for p in strategy.plugins)
    strategy.train(stream.train_stream[0])
    assert Count.iterations > 0
