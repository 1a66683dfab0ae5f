"""PackNet with norm layers and bias-free convolutions: old tasks keep their outputs; state round-trips."""

from __future__ import annotations

import pytest
import torch
from avalanche.models.packnet import PackNetModel
from avalanche.training import PackNet
from torch import nn

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models.packnet import PackNetLayer, PackNetNorm, prepare_for_packnet

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def stream():
    return build_benchmark("split_digits", "task", seed=0)


def make_model(seed: int) -> PackNetModel:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 8 * 8, 2))
    assert prepare_for_packnet(net) == 3
    return PackNetModel(net)


def make_strategy(model: PackNetModel, device: str) -> PackNet:
    return PackNet(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05), post_prune_epochs=1,
                   prune_proportion=0.5, train_mb_size=32, train_epochs=2, eval_mb_size=256, device=device,
                   evaluator=None)


def predict(model: nn.Module, stream, exp: int, device: str) -> torch.Tensor:
    x = torch.stack([stream.test_stream[exp].dataset[i][0] for i in range(32)]).to(device)
    model.eval()
    with torch.no_grad():
        return model(x, torch.full((32,), exp, device=device)).clone()


def norms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def test_layers_are_wrapped_and_other_layers_refused():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, bias=False), nn.BatchNorm2d(2), nn.Flatten(),
                        nn.Linear(2, 2))
    assert prepare_for_packnet(net) == 4
    assert [type(m).__name__ for m in net] == ["PackNetLayer", "PackNetLayer", "PackNetNorm", "Flatten", "PackNetLayer"]
    assert net[0].has_bias and not net[1].has_bias
    assert prepare_for_packnet(net) == 0  # wrapped layers are left alone
    with pytest.raises(TypeError, match="norm layer"):
        PackNetNorm(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="nn.Linear or nn.ConvNd"):
        PackNetLayer(nn.BatchNorm2d(2))


def test_norm_is_trained_with_the_first_task_and_frozen_after_it(stream):
    model = make_model(0)
    strategy = make_strategy(model, "cpu")
    bn = norms(model)[0]
    start = {k: v.clone() for k, v in bn.state_dict().items()}
    strategy.train(stream.train_stream[0])
    assert not torch.equal(bn.weight, start["weight"]) and not torch.equal(bn.running_mean, start["running_mean"])
    first = predict(model, stream, 0, "cpu")
    after_first = {k: v.clone() for k, v in bn.state_dict().items()}
    strategy.train(stream.train_stream[1])
    assert all(torch.equal(v, bn.state_dict()[k]) for k, v in after_first.items())
    assert not bn.training and not bn.weight.requires_grad
    assert torch.equal(predict(model, stream, 0, "cpu"), first)


@pytest.mark.parametrize("device", DEVICES)
def test_state_round_trip_through_torch_load_continues_identically_on_the_device(stream, device, tmp_path):
    model = make_model(0)
    make_strategy(model, device).train(stream.train_stream[0])
    torch.save(model.state_dict(), tmp_path / "packnet.pt")
    saved = torch.load(tmp_path / "packnet.pt", map_location="cpu")  # torch's weights_only default

    fresh = make_model(123)
    fresh.load_state_dict(saved)
    assert all(not p.requires_grad for m in norms(fresh) for p in m.parameters())
    assert [n for n, p in fresh.named_parameters() if p.requires_grad] == \
        [n for n, p in model.named_parameters() if p.requires_grad] == ["wrappee.0.wrappee.weight", "wrappee.4.wrappee.weight"]
    fresh.train()
    assert not any(m.training for m in norms(fresh))  # the first task's statistics stay
    fresh.to(device)
    assert torch.equal(predict(fresh, stream, 0, device), predict(model, stream, 0, device))

    after = []
    for net in (model, fresh.cpu()):
        torch.manual_seed(7)
        make_strategy(net, device).train(stream.train_stream[1])
        after.append(net.state_dict())
    assert after[0].keys() == after[1].keys()
    assert [k for k, v in after[0].items() if not torch.equal(v, after[1][k])] == []
    assert all(v.device.type == torch.device(device).type for v in after[0].values())
