"""SI must actually consolidate on the CPU.

Avalanche 0.6.0's ``SynapticIntelligencePlugin`` stores its weight snapshots with
``param.detach().cpu().flatten()``; on the CPU that is a view of the live parameter, so the
"old" weights move with the new ones, every path integral is zero and the penalty vanishes.
"""

import torch
from avalanche.training import Naive
from avalanche.training.plugins import SynapticIntelligencePlugin as AvalancheSI
from torch import nn
from avalanche.benchmarks import tensors_benchmark

from avalanche_ext.plugins import SafeSynapticIntelligencePlugin


def _stream():
    g = torch.Generator().manual_seed(0)
    sets = []
    for t in range(2):
        x = torch.randn(64, 8, generator=g)
        sets.append((x, (x[:, t] > 0).long() + 2 * t))
    return tensors_benchmark(train_tensors=sets, test_tensors=sets, task_labels=[0, 0])


def _train(plugin, n_exps=1):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), train_mb_size=16,
                     train_epochs=2, plugins=[plugin], evaluator=None)
    for exp in _stream().train_stream[:n_exps]:
        strategy.train(exp)
    return strategy, model


def _importance(plugin):
    return torch.cat([v.data.flatten() for v in plugin.ewc_data[1].values()])


def test_avalanche_plugin_learns_nothing_on_cpu():
    """Documents the quirk this project works around: if Avalanche fixes it, this test says so."""
    plugin = AvalancheSI(si_lambda=1.0)
    _train(plugin)
    assert torch.count_nonzero(_importance(plugin)) == 0


def test_importance_is_positive_after_an_experience():
    plugin = SafeSynapticIntelligencePlugin(si_lambda=1.0)
    _train(plugin)
    omega = _importance(plugin)
    assert (omega >= 0).all() and torch.count_nonzero(omega) > omega.numel() // 2


def test_anchor_is_a_copy_and_the_penalty_grows_as_weights_move():
    plugin = SafeSynapticIntelligencePlugin(si_lambda=1000.0)
    strategy, model = _train(plugin, n_exps=1)
    plugin.before_training_exp(strategy)  # the next experience takes its anchor
    anchor = {k: v.data.clone() for k, v in plugin.ewc_data[0].items()}
    assert plugin.compute_ewc_loss(model, plugin.ewc_data, plugin.excluded_parameters, device="cpu",
                                   lambd=1000.0).item() == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    for k, v in plugin.ewc_data[0].items():
        assert torch.equal(v.data, anchor[k])  # moving the weights does not move the anchor
    penalty = plugin.compute_ewc_loss(model, plugin.ewc_data, plugin.excluded_parameters, device="cpu",
                                      lambd=1000.0).item()
    expected = 1000.0 / 2 * sum((0.1 ** 2) * v.data.sum().item() for v in plugin.ewc_data[1].values())
    assert penalty > 0 and abs(penalty - expected) <= 1e-4 * expected


def test_si_limits_drift_of_important_weights():
    """With a strong penalty the weights move less on the second experience than without one."""
    def drift(lam):
        plugin = SafeSynapticIntelligencePlugin(si_lambda=lam)
        strategy, model = _train(plugin, n_exps=1)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        strategy.train(_stream().train_stream[1])
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return (after - before).norm().item()

    assert drift(1e4) < 0.5 * drift(0.0)


def test_bad_settings_fail_at_construction():
    import pytest

    with pytest.raises(ValueError, match="si_lambda"):
        SafeSynapticIntelligencePlugin(si_lambda=-1.0)
    with pytest.raises(ValueError, match="si_lambda"):
        SafeSynapticIntelligencePlugin(si_lambda=[1.0, -2.0])
    with pytest.raises(ValueError, match="eps"):
        SafeSynapticIntelligencePlugin(si_lambda=1.0, eps=0.0)
