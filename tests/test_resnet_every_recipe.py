"""arch=resnet18 under every recipe: each one that accepts it trains its convolutions on a 32x32 stream,
and each one that cannot use it refuses it when its settings are resolved, before any data loads."""

from __future__ import annotations

import pytest
import torch

from avalanche_ext.benchmarks.sources import Source
from avalanche_ext.benchmarks.streams import split_stream
from avalanche_ext.hparams import HParamError
from avalanche_ext.models.hat import HATBlock
from avalanche_ext.models.resnet import BasicBlock
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import all_recipes, get_recipe

#: Recipes whose method cannot use the reduced ResNet-18, and so refuse arch=resnet18.
REFUSE = {"pnn"}

#: Settings that keep each run to a few seconds of CPU (the method is unchanged).
FAST = {
    "progress_compress": {"compress_epochs": 1, "fisher_samples": 4},
    "generative_replay": {"gen_iterations": 2},
    "gnr": {"vae_epochs": 1},
    "generative_latent_replay": {"vae_epochs": 1},
}

_STREAMS: dict[str, object] = {}


def stream_for(scenario: str):
    """Two experiences of two classes each, 3x32x32 images (the shape of split CIFAR)."""
    if scenario not in _STREAMS:
        g = torch.Generator().manual_seed(0)
        y = torch.arange(4).repeat(4)
        x = 0.7 * torch.rand(16, 3, 32, 32, generator=g) + 0.1 * y[:, None, None, None]  # in [0, 1]
        source = Source("fake_cifar", x, y, x[:8].clone(), y[:8].clone())
        _STREAMS[scenario] = split_stream(source, "fake_cifar", scenario, 2, 0)
    return _STREAMS[scenario]


def settings(recipe) -> dict:
    fast = {k: v for k, v in FAST.get(recipe.name, {}).items() if k in recipe.defaults(None)}
    return {"arch": "resnet18", "epochs": 1, "batch_size": 8, **fast}


NAMES = sorted(r.name for r in all_recipes())


@pytest.mark.parametrize("name", sorted(REFUSE))
def test_recipes_that_cannot_use_resnet18_refuse_it_before_data_loads(name):
    recipe = get_recipe(name)
    with pytest.raises(HParamError, match="arch"):
        recipe.resolve(None, settings(recipe))


@pytest.mark.parametrize("name", [n for n in NAMES if n not in REFUSE])
def test_every_other_recipe_trains_the_resnet_on_32x32_images(name):
    recipe = get_recipe(name)
    scenario = recipe.scenarios[0]
    stream = stream_for(scenario)
    torch.manual_seed(0)
    strategy = recipe.build(RecipeContext(stream, recipe.resolve(None, settings(recipe), scenario=scenario),
                                          evaluator=None))
    model = strategy.model
    assert is_resnet(model), f"{name} does not train a ResNet-18"
    before = [(p, p.detach().clone()) for p in model.parameters() if p.is_floating_point()]
    if recipe.trains_once:
        strategy.train(stream.train_stream)
    else:
        for exp in stream.train_stream:
            strategy.train(exp)
    assert any(not torch.equal(p.detach(), old) for p, old in before), f"{name}: no weight of the network changed"
    assert all(torch.isfinite(p).all() for p in strategy.model.parameters())


def is_resnet(model) -> bool:
    """The model holds the reduced ResNet-18's blocks (HAT's gated ones too), or generates one (HNET's target)."""
    target = getattr(model, "target", None)
    blocks = sum(isinstance(m, (BasicBlock, HATBlock)) for m in model.modules())
    return blocks >= 8 or getattr(target, "num_params", 0) > 1_000_000
