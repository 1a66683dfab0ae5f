"""The reduced ResNet-18 under the pack's own task-aware methods: SupSup, Ensemble and HNET.

One short training run on a fake 32x32 stream per recipe, built exactly as ``--set
arch=resnet18`` builds it, and the property each method promises on top of it.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks.sources import Source
from avalanche_ext.benchmarks.streams import split_stream
from avalanche_ext.models import HyperNetClassifier, SupSupNet, TaskBatchNorm
from avalanche_ext.models.ensemble import Ensemble
from avalanche_ext.models.layers.supermask import MaskedConv2d
from avalanche_ext.plugins import HypernetworkPlugin
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe

SETTINGS = {"arch": "resnet18", "batch_size": 16, "epochs": 1, "eval_batch_size": 16}


def fake_stream(scenario: str):
    """Two experiences of two classes, 16 RGB 32x32 training images each: one step per experience."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(8)
    x = torch.rand(32, 3, 32, 32, generator=g) + y.view(-1, 1, 1, 1) * 0.5
    return split_stream(Source("fake32", x, y, x[::4].clone(), y[::4].clone()), "fake32", scenario, 2, 0)


def build(recipe: str, scenario: str, **overrides):
    torch.manual_seed(0)
    stream = fake_stream(scenario)
    r = get_recipe(recipe)
    ctx = RecipeContext(stream=stream, hp=r.resolve(None, {**SETTINGS, **overrides}),
                        evaluator=EvaluationPlugin(loggers=[]), device="cpu")
    return stream, r.build(ctx)


def outputs(strategy, stream, i):
    model = strategy.model
    model.eval()
    x, _, t = next(iter(torch.utils.data.DataLoader(stream.test_stream[i].dataset, batch_size=64)))
    with torch.no_grad():
        return model(x, t) if not isinstance(model, SupSupNet) else model(x, task=i)


def test_supsup_masks_every_resnet_conv_and_keeps_batch_norm_per_task():
    stream, strategy = build("supsup", "task")
    net = strategy.model
    assert isinstance(net, SupSupNet)
    assert sum(isinstance(m, MaskedConv2d) for m in net.modules()) == 20  # stem, 16 block convs, 3 shortcuts
    assert len(net.norm_layers) == 20 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    strategy.train(stream.train_stream[0])
    before = outputs(strategy, stream, 0)
    stats = [bn.mean_0.clone() for bn in net.norm_layers]
    strategy.train(stream.train_stream[1])
    assert torch.equal(outputs(strategy, stream, 0), before)  # task 0's masks and statistics are its own
    assert all(torch.equal(s, bn.mean_0) for s, bn in zip(stats, net.norm_layers))
    assert any(not torch.equal(bn.mean_1, bn.mean_0) for bn in net.norm_layers)
    assert isinstance(net.norm_layers[0], TaskBatchNorm)


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_ensemble_members_are_resnets_and_old_ones_stay_frozen(scenario):
    stream, strategy = build("ensemble", scenario)
    model = strategy.model
    assert isinstance(model, Ensemble)
    strategy.train(stream.train_stream[0])
    first = {k: v.clone() for k, v in model.members[0].state_dict().items()}
    strategy.train(stream.train_stream[1])
    assert len(model.members) == 2 and hasattr(model.members[1], "features")
    assert model.members[1].features.layer4[0].conv1.out_channels == 160
    assert all(torch.equal(v, model.members[0].state_dict()[k]) for k, v in first.items())


def test_hnet_generates_a_resnet_target_in_chunks_with_batch_norm_statistics_per_task():
    stream, strategy = build("hnet", "task", batch_size=8)  # two steps per experience
    model = strategy.model
    plugin = next(p for p in strategy.plugins if isinstance(p, HypernetworkPlugin))
    assert isinstance(model, HyperNetClassifier)
    report = model.memory_report()
    assert report["target_params"] > 1_000_000 and report["n_chunks"] > 1
    assert model.target.has_task_statistics
    strategy.train(stream.train_stream[0])
    stats = {k: v.clone() for k, v in model.target.task_statistics(0).items()}
    strategy.train(stream.train_stream[1])
    assert model.tasks == [0, 1]
    assert plugin.targets[0].numel() == report["target_params"]  # task 0's whole ResNet is protected
    assert plugin.last_penalty > 0
    assert all(torch.equal(v, model.target.task_statistics(0)[k]) for k, v in stats.items())
    assert any(not torch.equal(v, model.target.task_statistics(1)[k]) for k, v in stats.items()
               if v.is_floating_point())
    assert torch.isfinite(outputs(strategy, stream, 0)).all()
