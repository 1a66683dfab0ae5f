"""HAT on the reduced ResNet-18: every shared weight is gated by the channels it connects, batch norm
is per task, and a saturated attention keeps an old task's predictions bit for bit."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from avalanche_ext.benchmarks.sources import Source
from avalanche_ext.benchmarks.streams import split_stream
from avalanche_ext.models import HATResNet, build_hat_network
from avalanche_ext.plugins.hat import HATPlugin

from hat_checks import check_saturated_task_survives, task_inputs

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def stream():
    """Two tasks of two classes, 3x16x16 images whose class shifts their brightness."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(12)
    x = 0.6 * torch.rand(len(y), 3, 16, 16, generator=g) + 0.1 * y[:, None, None, None]
    yt = torch.arange(4).repeat(4)
    xt = 0.6 * torch.rand(len(yt), 3, 16, 16, generator=g) + 0.1 * yt[:, None, None, None]
    return split_stream(Source("fake_cifar", x, y, xt, yt), "fake_cifar", "task", 2, 0)


def small(stream, **kw) -> HATResNet:
    return HATResNet(stream.input_shape[0], stream.n_outputs, nf=4, **kw)


def make(stream, net, *, epochs=2, device="cpu"):
    plugin = HATPlugin()
    strategy = Naive(
        model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.05), criterion=nn.CrossEntropyLoss(),
        train_mb_size=16, train_epochs=epochs, eval_mb_size=64, plugins=[plugin], device=device,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    return plugin, strategy


def test_the_resnet_is_the_reduced_resnet18_with_every_convolution_gated():
    net = build_hat_network((3, 32, 32), 10, arch="resnet18")
    assert isinstance(net, HATResNet)
    convs = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    assert len(convs) == 20  # stem, 16 in the blocks, 3 strided shortcuts
    # nothing shared escapes the gates: the shared parameters are exactly the convolutions
    shared = {n for n, _ in net.named_parameters() if not n.startswith(("embeddings.", "heads.", "norms."))}
    assert set(net.protected_parameters()) == convs == shared
    assert 1_000_000 < sum(p.numel() for p in net.protected_parameters().values()) < 1_100_000
    assert net.units == [20] + [20] * 4 + [40] * 4 + [80] * 4 + [160] * 4
    net.add_task(0)
    assert net(torch.zeros(2, 3, 32, 32), 0).shape == (2, 10)
    assert len(net.norms["0"]) == 20 and all(isinstance(m, nn.BatchNorm2d) for m in net.norms["0"])


def test_each_weight_is_masked_by_the_two_channels_it_connects():
    torch.manual_seed(0)
    net = HATResNet(3, 2, nf=4)
    gates = [torch.rand(u) for u in net.units]
    masks = net.parameter_masks(gates)
    assert torch.equal(masks["stem.weight"], gates[0].view(-1, 1, 1, 1).expand(4, 3, 3, 3))
    # block 2 opens stage 2: its input is block 1's output (gate 2), its middle gate 5, its output gate 6
    b = 2
    inp, mid, out = gates[2 * b], gates[2 * b + 1], gates[2 * b + 2]
    w1, w2, ws = (masks[f"blocks.{b}.{c}.weight"] for c in ("conv1", "conv2", "shortcut"))
    assert w1.shape == (8, 4, 3, 3) and w2.shape == (8, 8, 3, 3) and ws.shape == (8, 4, 1, 1)
    for i in range(8):
        for j in range(4):
            assert w1[i, j, 1, 2] == min(mid[i], inp[j])
            assert ws[i, j, 0, 0] == min(out[i], inp[j])
        for j in range(8):
            assert w2[i, j, 0, 0] == min(out[i], mid[j])
    assert "blocks.1.shortcut.weight" not in masks  # an identity shortcut has no weight


def test_saturated_attention_freezes_old_weights_norms_and_predictions(stream):
    torch.manual_seed(0)
    net = small(stream)
    plugin, strategy = make(stream, net)
    strategy.train(stream.train_stream[0])
    before, after = check_saturated_task_survives(net, plugin, strategy, task_inputs(stream, 0),
                                                  stream.train_stream[1], own=("heads.0.", "embeddings.0.", "norms.0."))
    assert any(n.startswith("norms.0.") and n.endswith("running_mean") for n in before)  # the norms were checked
    assert "norms.1.0.running_mean" in after and "norms.1.0.running_mean" not in before  # task 1 has its own


def test_norm_statistics_are_those_of_the_gates_evaluation_uses(stream):
    torch.manual_seed(0)
    net = small(stream)
    _, strategy = make(stream, net, epochs=3)
    strategy.train(stream.train_stream[0])
    # the plugin replaced the statistics of 3 annealed epochs by one pass at s_max (2 batches of 16 and 8)
    assert all(int(m.num_batches_tracked) == 2 for m in net.norms["0"])

    x = task_inputs(stream, 0, split="train")
    assert net.recalibrate_norms(0, [x]) == 1
    stem = net.stem(x)
    assert torch.allclose(net.norms["0"][0].running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-6)
    net.train()
    net.s = net.s_max
    with torch.no_grad():
        batch_stats = net(x, 0)  # normalised by the batch's own statistics, at the gates of evaluation
    net.eval()
    with torch.no_grad():
        running = net(x, 0)
    assert torch.allclose(running, batch_stats, atol=0.05)  # the stored statistics are that batch's
    assert torch.equal(running.argmax(1), batch_stats.argmax(1))


@pytest.mark.parametrize("device", DEVICES)
def test_state_with_per_task_norms_round_trips_onto_a_fresh_network(stream, device, tmp_path):
    torch.manual_seed(0)
    net = small(stream)
    _, strategy = make(stream, net, epochs=1, device=device)
    for exp in stream.train_stream:
        strategy.train(exp)
    torch.save(net.state_dict(), tmp_path / "net.pt")

    torch.manual_seed(1)
    fresh = small(stream).to(device)
    fresh.load_state_dict(torch.load(tmp_path / "net.pt", map_location="cpu"))
    assert fresh.tasks == [0, 1]
    assert all(p.device.type == device for p in fresh.parameters())
    fresh.eval()
    net.eval()
    x = task_inputs(stream, 1).to(device)
    with torch.no_grad():
        assert torch.equal(fresh(x, 1), net(x, 1))
    assert fresh.memory_report()["norm_bytes_per_task"] == 4 * 4 * sum(fresh.norm_channels)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="nf"):
        HATResNet(3, 2, nf=0)
    with pytest.raises(ValueError, match="four stages"):
        HATResNet(3, 2, blocks=(2, 2, 2))
