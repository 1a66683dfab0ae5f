"""HAT: saturated attention freezes old tasks exactly; the optimizer cannot leak; state round-trips."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.functional.hat import anneal_s, attention_regularizer, compensate_embedding_grad, weight_mask
from avalanche_ext.models.hat import HATNet, build_hat_network
from avalanche_ext.models import build_network
from avalanche_ext.plugins import IncompatibleModelError
from avalanche_ext.plugins.hat import HATPlugin, check_optimizer

from hat_checks import check_saturated_task_survives, snapshot, task_inputs



@pytest.fixture(scope="module")
def stream():
    return build_benchmark("split_digits", "task", seed=0)


def make(stream, *, optimizer=None, plugin=None, epochs=2, seed=0, hidden=64, model=None, device="cpu"):
    torch.manual_seed(seed)
    net = model if model is not None else build_hat_network(stream.input_shape, stream.n_outputs, hidden=hidden)
    opt = optimizer(net) if optimizer is not None else torch.optim.SGD(net.parameters(), lr=0.05)
    plugin = plugin if plugin is not None else HATPlugin()
    strategy = Naive(
        model=net, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=epochs,
        eval_mb_size=256, plugins=[plugin], evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
        device=device,
    )
    return net, plugin, strategy


# ---- the maths ------------------------------------------------------------------------------
def test_anneal_s_goes_from_inverse_s_max_to_s_max_within_an_epoch():
    values = [anneal_s(b, 10, 400.0) for b in range(10)]
    assert values[0] == pytest.approx(1 / 400)
    assert values[-1] == pytest.approx(400.0)
    assert all(a < b for a, b in zip(values, values[1:]))
    assert anneal_s(0, 1, 400.0) == 400.0


def test_regularizer_charges_only_units_free_of_earlier_tasks():
    gates = [torch.tensor([0.2, 0.9, 0.5]), torch.tensor([1.0, 0.0])]
    # first task: nothing is held yet (a_<1 = 0), so R is the mean attention (paper, eq. 5)
    assert attention_regularizer(gates, None).item() == pytest.approx(torch.cat(gates).mean().item())
    # reusing units held by earlier tasks is free
    held = [torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 0.0])]
    assert attention_regularizer(gates, held).item() == 0.0
    # the free units are charged by their attention, normalised by the free capacity
    held = [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0])]
    assert attention_regularizer(gates, held).item() == pytest.approx((0.9 + 1.0) / 2)
    # a saturated network has no free unit: R = 0, not NaN
    full = [torch.ones(3), torch.ones(2)]
    assert attention_regularizer(gates, full).item() == 0.0


def test_weight_mask_is_min_of_the_connected_units_and_cnn_flatten_is_channel_major():
    post, pre = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5, 0.0])
    m = weight_mask(post, pre, (2, 3))
    assert torch.equal(m, torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]]))
    assert torch.equal(weight_mask(post, None, (2, 3)), torch.tensor([[0.0] * 3, [1.0] * 3]))

    net = build_hat_network((1, 8, 8), 2, arch="cnn", hidden=16)
    gates = [torch.rand(u) for u in net.units]
    masks = net.parameter_masks(gates)
    assert set(masks) == set(net.protected_parameters())
    w = masks["layers.2.weight"]  # Linear(64 * 4 -> 16) after the 64-channel conv and a 2x2 pool
    assert w.shape == (16, 256)
    assert w[3, 4 * 5 + 2].item() == pytest.approx(min(gates[2][3].item(), gates[1][5].item()))
    assert masks["layers.1.weight"].shape == (64, 32, 3, 3)
    net.add_task(0)
    assert net(torch.zeros(3, 1, 8, 8), 0).shape == (3, 2)
    assert build_hat_network((1, 28, 28), 2, arch="cnn", hidden=16).units == [32, 64, 16]


def test_embedding_compensation_is_identity_at_s_max_scale_for_zero_embedding():
    e = torch.zeros(3)
    g = torch.ones(3)
    # cosh(0) = 1 at any s, so only s_max / s remains
    assert torch.allclose(compensate_embedding_grad(g, e, 4.0, 400.0), g * 100)
    big = compensate_embedding_grad(g, torch.full((3,), 6.0), 400.0, 400.0)
    assert torch.isfinite(big).all()


def test_gates_below_the_cutoff_are_exactly_zero_and_change_no_output():
    torch.manual_seed(0)
    net = build_hat_network((1, 8, 8), 2, hidden=16)
    net.add_task(0)
    with torch.no_grad():
        net.task_embeddings(0)[0].copy_(torch.linspace(-0.3, 0.3, 16))  # s_max * e from -120 to 120
    x = torch.randn(5, 1, 8, 8)
    net.eval()
    with torch.no_grad():
        cut = net(x, 0)
        gates = net.gates(0)
        net.gate_cutoff = math.inf
        exact = net(x, 0)
        reference = net.gates(0)
    se = net.s_max * net.task_embeddings(0)[0]
    assert torch.equal(gates[0][se < -50], torch.zeros(int((se < -50).sum())))
    assert (reference[0][se < -50] > 0).any()  # the plain sigmoid leaves them tiny, not zero
    assert torch.equal(gates[0][se >= -50], reference[0][se >= -50])
    assert torch.allclose(cut, exact, rtol=0, atol=1e-6)


# ---- the defining property ------------------------------------------------------------------
def test_saturated_attention_freezes_old_weights_and_old_predictions(stream):
    net, plugin, strategy = make(stream)
    strategy.train(stream.train_stream[0])
    assert plugin.trained_tasks == [0]
    check_saturated_task_survives(net, plugin, strategy, task_inputs(stream, 0), stream.train_stream[1])
    assert plugin.trained_tasks == [0, 1]


def test_fully_held_network_keeps_every_shared_weight(stream):
    net, plugin, strategy = make(stream, epochs=1)
    strategy.train(stream.train_stream[0])
    plugin.cumulative = [torch.ones(u) for u in net.units]
    net.add_task(1)  # as adaptation would, so its initial head can be compared
    before = snapshot(net)
    strategy.train(stream.train_stream[1])
    after = snapshot(net)
    for name in net.protected_parameters():
        assert torch.equal(after[name], before[name]), name
    # the new task still trains its own embeddings and head
    assert not torch.equal(after["heads.1.weight"], before["heads.1.weight"])
    # and pays no sparsity cost: every unit is already held
    assert plugin.last_regularizer == 0.0


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda net: torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        lambda net: torch.optim.SGD(net.parameters(), lr=0.05, weight_decay=1e-4),
        lambda net: torch.optim.Adam(net.parameters(), lr=1e-3),
    ],
    ids=["momentum", "weight_decay", "adam"],
)
def test_leaky_optimizers_are_rejected_before_any_update(stream, optimizer):
    net, _, strategy = make(stream, optimizer=optimizer)
    before = snapshot(net)
    with pytest.raises(ValueError, match="HAT"):
        strategy.train(stream.train_stream[0])
    after = snapshot(net)
    assert all(torch.equal(after[n], before[n]) for n in before)
    with pytest.raises(ValueError):
        check_optimizer(net, optimizer(net))


def test_momentum_would_leak_into_protected_weights(stream):
    """Why momentum is rejected: its buffer from task 0 keeps moving weights whose gradient is 0."""
    net, plugin, strategy = make(stream, optimizer=lambda n: torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9))
    import avalanche_ext.plugins.hat as hat_module

    original = hat_module.check_optimizer  # bypass the check to show the leak
    hat_module.check_optimizer = lambda *a, **k: None
    try:
        strategy.train(stream.train_stream[0])
        plugin.cumulative = [torch.ones(u) for u in net.units]
        before = snapshot(net)
        strategy.train(stream.train_stream[1])
    finally:
        hat_module.check_optimizer = original
    after = snapshot(net)
    assert any(not torch.equal(after[n], before[n]) for n in net.protected_parameters())


# ---- bad inputs fail before training --------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"c": -1.0}, {"thres_emb": 0.0}, {"thres_cosh": -1.0}, {"clip_grad": 0.0}])
def test_bad_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        HATPlugin(**kwargs)


def test_bad_networks_raise():
    with pytest.raises(ValueError):
        build_hat_network((1, 8, 8), 2, arch="resnet")
    with pytest.raises(ValueError):
        build_hat_network((1, 8, 8), 2, s_max=1.0)
    with pytest.raises(ValueError):
        HATNet([torch.nn.Linear(64, 10), torch.nn.Linear(7, 5)], 2)
    with pytest.raises(ValueError):
        HATNet([torch.nn.Linear(64, 10), torch.nn.Conv2d(10, 4, 3)], 2)


def test_non_hat_model_fails_before_training(stream):
    model = build_network(stream.input_shape, stream.n_outputs, hidden=32, multihead=True)
    _, _, strategy = make(stream, model=model)
    before = snapshot(model)
    with pytest.raises(IncompatibleModelError, match="HATNet") as error:
        strategy.train(stream.train_stream[0])
    assert isinstance(error.value, TypeError) and "build_hat_network" in str(error.value)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("scenario", ["class", "domain"])
def test_streams_without_distinct_task_labels_fail_on_the_first_experience(scenario):
    st = build_benchmark("split_digits", scenario, seed=0)
    net, _, strategy = make(st)
    with pytest.raises(ValueError, match="distinct task label .* reuses task label 0"):
        strategy.train(st.train_stream[0])
    assert net.tasks == [0]
    assert all(p.grad is None for p in net.parameters())


# ---- state ----------------------------------------------------------------------------------
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def saved_and_loaded(obj, path):
    """``obj`` through ``torch.save`` and a plain ``torch.load`` onto the CPU, as a checkpoint loads."""
    torch.save(obj, path)
    return torch.load(path, map_location="cpu")


@pytest.mark.parametrize("device", DEVICES)
def test_state_round_trip_through_torch_load_continues_identically_on_the_device(stream, device, tmp_path):
    net, plugin, strategy = make(stream, epochs=1, device=device)
    for i in range(2):
        strategy.train(stream.train_stream[i])
    net_state = saved_and_loaded(net.state_dict(), tmp_path / "net.pt")
    plugin_state = saved_and_loaded(plugin.state_dict(), tmp_path / "plugin.pt")

    torch.manual_seed(123)
    net2 = build_hat_network(stream.input_shape, stream.n_outputs, hidden=64)
    net2.load_state_dict(net_state)
    plugin2 = HATPlugin()
    plugin2.load_state_dict(plugin_state)
    assert net2.tasks == net.tasks
    assert plugin2.trained_tasks == plugin.trained_tasks == [0, 1]
    assert all(torch.equal(a.cpu(), b.cpu()) for a, b in zip(plugin2.cumulative, plugin.cumulative))
    assert plugin2.state_dict()["capacity"] == plugin.state_dict()["capacity"]
    net.eval()
    net2.to(device).eval()
    with torch.no_grad():
        for t in (0, 1):
            x = task_inputs(stream, t).to(device)
            assert torch.equal(net(x, t), net2(x, t))

    # both continue identically on the next task, on the strategy's device
    results = []
    for n, p in ((net, plugin), (net2.cpu(), plugin2)):
        _, _, s = make(stream, model=n, plugin=p, epochs=1, seed=7, device=device)
        s.train(stream.train_stream[2])
        assert all(a.device.type == torch.device(device).type for a in p.cumulative)
        results.append(snapshot(n))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert plugin2.capacity == plugin.capacity


# ---- recipe and example ---------------------------------------------------------------------
def test_recipe_runs_task_il_and_keeps_old_tasks(tmp_path):
    from avalanche_ext.recipe import UnsupportedScenarioError
    from avalanche_ext.registry import get_recipe
    from avalanche_ext.runner import RunConfig, run

    recipe = get_recipe("hat")
    with pytest.raises(UnsupportedScenarioError):
        recipe.check_scenario("class")
    result = run(RunConfig(recipe="hat", benchmark="split_digits", scenario="task", n_experiences=3, epochs=2,
                           tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False, threads=1))
    matrix = result["acc_matrix"]
    assert len(matrix) == 3
    # HAT's old-task accuracy is held by its masks: later rows never drop much below the diagonal
    assert all(matrix[-1][i] >= matrix[i][i] - 0.05 for i in range(3))


def test_recipe_rejects_adam_before_training(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    with pytest.raises(ValueError, match="SGD"):
        run(RunConfig(recipe="hat", benchmark="split_digits", scenario="task", n_experiences=2, epochs=1,
                      overrides={"optimizer": "adam"}, tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False))


