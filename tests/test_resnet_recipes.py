"""arch=resnet18 under the architectural recipes: they train on 32x32 images and keep old tasks, or refuse early."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avalanche_ext.benchmarks.sources import Source
from avalanche_ext.benchmarks.streams import split_stream
from avalanche_ext.hparams import HParamError
from avalanche_ext.models.resnet import BasicBlock
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe


@pytest.fixture(scope="module")
def stream():
    """Two task-IL experiences of two classes each, 3x32x32 images (the shape of split CIFAR)."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(6)
    x = torch.rand(24, 3, 32, 32, generator=g) + 0.3 * y[:, None, None, None]
    source = Source("fake_cifar", x, y, x[:8].clone(), y[:8].clone())
    return split_stream(source, "fake_cifar", "task", 2, 0)


#: Settings that keep each run to a few seconds of CPU.
FAST = {"progress_compress": {"compress_epochs": 1, "fisher_samples": 4}}


def build(name, stream):
    torch.manual_seed(0)
    recipe = get_recipe(name)
    hp = recipe.resolve(None, {"arch": "resnet18", "epochs": 1, "batch_size": 8, **FAST.get(name, {})})
    return recipe.build(RecipeContext(stream, hp, evaluator=None))


def predict(model: nn.Module, stream, exp: int) -> torch.Tensor:
    x = torch.stack([stream.test_stream[exp].dataset[i][0] for i in range(4)])
    task = torch.full((4,), stream.test_stream[exp].task_labels[0])
    model.eval()
    with torch.no_grad():
        return model(x, task).clone()


def is_resnet(model: nn.Module) -> bool:
    return sum(isinstance(m, BasicBlock) for m in model.modules()) >= 8


@pytest.mark.parametrize("name", ["piggyback", "packnet", "progress_compress"])
def test_resnet18_trains_one_experience(stream, name):
    strategy = build(name, stream)
    assert is_resnet(strategy.model)
    before = {k: v.detach().clone() for k, v in strategy.model.state_dict().items() if isinstance(v, torch.Tensor)}
    strategy.train(stream.train_stream[0])
    after = strategy.model.state_dict()
    changed = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert any("conv" in k or "stem" in k for k in changed)  # the convolutional features learned
    assert torch.isfinite(predict(strategy.model, stream, 0)).all()


@pytest.mark.parametrize("name", ["piggyback", "packnet"])
def test_mask_methods_keep_the_first_tasks_outputs_with_batch_norm(stream, name):
    # batch norm is trained with the first task and frozen after it: later tasks cannot move it
    strategy = build(name, stream)
    strategy.train(stream.train_stream[0])
    first = predict(strategy.model, stream, 0)
    strategy.train(stream.train_stream[1])
    assert torch.equal(predict(strategy.model, stream, 0), first)
    norms = [m for m in strategy.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 20 and all(not p.requires_grad for m in norms for p in m.parameters())


def test_hat_gates_the_resnets_channels_and_keeps_a_saturated_first_task(stream):
    from avalanche_ext.models.hat import HATResNet

    strategy = build("hat", stream)
    net = strategy.model
    assert isinstance(net, HATResNet) and len(net.protected_parameters()) == 20
    strategy.train(stream.train_stream[0])
    hat = next(p for p in strategy.plugins if type(p).__name__ == "HATPlugin")
    with torch.no_grad():  # saturate the first task's gates, as a long training does
        for e in net.task_embeddings(0):
            e.copy_(torch.where(e >= 0, 6.0, -6.0))
    hat.consolidate(net, 0)
    first = predict(net, stream, 0)
    strategy.train(stream.train_stream[1])
    assert torch.equal(predict(net, stream, 0), first)
    assert hat.trained_tasks == [0, 1] and 0 < hat.capacity[-1] <= 1


def test_a_recipe_that_cannot_use_resnet18_refuses_it_before_any_data_loads(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    # split_cifar10's files are absent here: reaching the data would fail otherwise
    with pytest.raises(HParamError, match="arch must be one of 'mlp', got 'resnet18'"):
        run(RunConfig(recipe="pnn", benchmark="split_cifar10", scenario="task", overrides={"arch": "resnet18"},
                      tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False, threads=1))
