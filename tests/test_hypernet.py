"""HNET: the output regularizer keeps old tasks' weights, task inference, functional target, state, errors."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.functional.hnet_reg import (
    hnet_output_regularizer,
    optimizer_step,
    output_regularizer,
    store_targets,
)
from avalanche_ext.models import build_network, cnn_features
from avalanche_ext.functional.entropy import entropy
from avalanche_ext.models import ChunkedHyperNetwork, FunctionalTarget, HyperNetClassifier, UnsupportedTargetError
from avalanche_ext.metrics import task_inference_metrics
from avalanche_ext.plugins import HypernetworkPlugin, IncompatibleModelError
from device_state import DEVICES, continue_each, devices_of, naive_on, same_state, through_file

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(embedding_dim=16, chunk_size=600, chunk_embedding_dim=8, hidden=(16,))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny matrices: one thread is faster and leaves the other core free
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_model(stream, *, task_inference: bool = False, target: nn.Module | None = None) -> HyperNetClassifier:
    net = target or build_network(stream.input_shape, stream.n_outputs, hidden=32, layers=1)
    return HyperNetClassifier(net, task_inference=task_inference, **SMALL)


def strategy_for(model, plugins, epochs: int = 3) -> Naive:
    return Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                 criterion=nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=epochs, eval_mb_size=256,
                 evaluator=EvaluationPlugin(*task_inference_metrics(), loggers=[]), plugins=plugins)


class PenaltySpy(SupervisedPlugin):
    """Record the HNET penalty of every iteration, per experience."""

    def __init__(self, hnet_plugin: HypernetworkPlugin):
        super().__init__()
        self.hnet_plugin = hnet_plugin
        self.per_exp: dict[int, list[float]] = {}

    def after_backward(self, strategy, *args, **kwargs):
        exp = strategy.experience.current_experience
        self.per_exp.setdefault(exp, []).append(self.hnet_plugin.last_penalty)


def relative_drift(model: HyperNetClassifier, plugin: HypernetworkPlugin, task: int) -> float:
    with torch.no_grad():
        target = plugin.targets[task]
        return float((model.hnet(task) - target).norm() / target.norm())


# --------------------------------------------------------------- the defining property
def test_old_task_output_stays_near_its_stored_target_and_drifts_without_beta():
    stream = build_benchmark("split_digits", "task")
    drift = {}
    for beta in (1.0, 0.0):
        torch.manual_seed(0)
        model = small_model(stream)
        plugin = HypernetworkPlugin(beta=beta)
        strategy = strategy_for(model, [plugin])
        strategy.train(stream.train_stream[0])
        strategy.train(stream.train_stream[1])
        assert sorted(plugin.targets) == [0]  # stored before task 1 for the earlier task only
        drift[beta] = relative_drift(model, plugin, 0)
    assert drift[1.0] < 0.05
    assert drift[0.0] > 0.2
    assert drift[0.0] > 5 * drift[1.0]


def test_lookahead_keeps_the_old_output_as_well():
    stream = build_benchmark("split_digits", "task")
    torch.manual_seed(0)
    model = small_model(stream)
    plugin = HypernetworkPlugin(beta=1.0, lookahead=True)
    strategy = strategy_for(model, [plugin])
    strategy.train(stream.train_stream[0])
    strategy.train(stream.train_stream[1])
    assert relative_drift(model, plugin, 0) < 0.05


def test_penalty_is_exactly_zero_on_the_first_task_and_positive_after():
    stream = build_benchmark("split_digits", "task")
    torch.manual_seed(0)
    model = small_model(stream)
    plugin = HypernetworkPlugin(beta=0.01)
    spy = PenaltySpy(plugin)
    strategy = strategy_for(model, [plugin, spy], epochs=1)
    strategy.train(stream.train_stream[0])
    strategy.train(stream.train_stream[1])
    assert spy.per_exp[0] and all(p == 0.0 for p in spy.per_exp[0])
    # the first step of task 1 starts exactly at the stored target; then the penalty is active
    assert spy.per_exp[1][0] == 0.0
    assert max(spy.per_exp[1][1:]) > 0.0


def test_earlier_embeddings_are_frozen():
    stream = build_benchmark("split_digits", "task")
    torch.manual_seed(0)
    model = small_model(stream)
    strategy = strategy_for(model, [HypernetworkPlugin(beta=1.0)], epochs=1)
    strategy.train(stream.train_stream[0])
    e0 = model.hnet.embedding(0).detach().clone()
    strategy.train(stream.train_stream[1])
    assert torch.equal(model.hnet.embedding(0), e0)
    assert not model.hnet.embedding(0).requires_grad and model.hnet.embedding(1).requires_grad


# ------------------------------------------------------------------- the regularizer
def test_output_regularizer_is_beta_over_k_times_squared_distances():
    out = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    tgt = torch.tensor([[0.0, 2.0], [1.0, 1.0], [3.0, 1.0]])
    # squared distances 1, 2, 4 -> beta / 3 * 7
    assert output_regularizer(out, tgt, beta=0.3).item() == pytest.approx(0.3 / 3 * 7)
    assert output_regularizer(list(out), list(tgt), beta=0.3).item() == pytest.approx(0.7)
    empty = output_regularizer([], [], beta=5.0)
    assert empty.item() == 0.0


def test_hnet_regularizer_matches_the_formula_and_spares_old_embeddings():
    torch.manual_seed(0)
    hnet = ChunkedHyperNetwork(1000, embedding_dim=8, chunk_size=300, chunk_embedding_dim=4, hidden=(12,))
    for t in range(3):
        hnet.add_task(t)
    assert hnet.n_chunks == 4 and hnet(0).shape == (1000,)
    assert hnet_output_regularizer(hnet, {}, beta=1.0).item() == 0.0
    targets = {t: hnet(t).detach() + 0.1 * (t + 1) for t in (0, 1)}
    reg = hnet_output_regularizer(hnet, targets, beta=0.5)
    manual = 0.5 / 2 * sum(((hnet(t) - targets[t]) ** 2).sum() for t in (0, 1))
    assert reg.item() == pytest.approx(manual.item(), rel=1e-5)
    reg.backward()
    assert hnet.embedding(0).grad is None and hnet.embedding(1).grad is None
    assert hnet.layers[0].weight.grad is not None and hnet.chunk_embeddings.grad is not None
    # stored targets are detached copies: the regularizer is 0 right after storing
    assert hnet_output_regularizer(hnet, store_targets(hnet, [0, 1]), beta=0.5).item() == 0.0


def test_lookahead_step_is_adams_step():
    p = nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=0.01)
    g = torch.tensor([2.0, -0.5, 1e-3])
    # first Adam step: m_hat = g, v_hat = g^2 -> -lr * g / (|g| + eps)
    torch.testing.assert_close(optimizer_step(opt, p, g), -0.01 * g / (g.abs() + 1e-8))
    sgd = torch.optim.SGD([p], lr=0.1)
    torch.testing.assert_close(optimizer_step(sgd, p, g), -0.1 * g)


# ------------------------------------------------------------ the functional target
@pytest.mark.parametrize("arch", ["mlp", "cnn_bn"])
def test_functional_target_matches_the_ordinary_network(arch):
    torch.manual_seed(0)
    if arch == "mlp":
        net = build_network((1, 8, 8), 4, hidden=16, layers=2)
    else:
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                            cnn_features(4, 16), nn.Linear(16, 4))
    net.eval()
    target = FunctionalTarget(net).eval()
    assert target.param_shapes == [tuple(p.shape) for p in net.parameters()]
    target.add_task(0)
    x = torch.randn(5, 1, 8, 8)
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    torch.testing.assert_close(target(x, target.split(flat), task=0), net(x))
    assert not list(target.parameters())  # the target trains nothing itself


def test_batch_norm_statistics_are_kept_per_task():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model = HyperNetClassifier(net, task_inference=True, **SMALL)
    model.register_task(0, range(3))
    model.register_task(1, range(3))
    model.train()
    model.current_task = 0
    model(torch.randn(16, 1, 8, 8) * 3 + 2)
    stats0 = model.target.task_statistics(0)
    stats1 = model.target.task_statistics(1)
    assert not torch.allclose(stats0["2.running_mean"], torch.zeros(8))
    assert torch.equal(stats1["2.running_mean"], torch.zeros(8))
    assert int(stats0["2.num_batches_tracked"]) == 1 and int(stats1["2.num_batches_tracked"]) == 0


def test_mixed_task_batch_uses_each_samples_task():
    stream = build_benchmark("split_digits", "task")
    torch.manual_seed(0)
    model = small_model(stream).eval()
    model.register_task(0)
    model.register_task(1)
    x = torch.randn(6, 1, 8, 8)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    out = model(x, labels)
    for t in (0, 1):
        torch.testing.assert_close(out[labels == t], model.forward_single_task(x[labels == t], t))


# ------------------------------------------------------------------ task inference
def test_entropy_inference_picks_the_lowest_entropy_task_and_is_reported():
    stream = build_benchmark("split_digits", "class")
    torch.manual_seed(0)
    model = small_model(stream, task_inference=True)
    plugin = HypernetworkPlugin(beta=0.01)
    strategy = strategy_for(model, [plugin], epochs=2)
    strategy.train(stream.train_stream[0])
    strategy.train(stream.train_stream[1])
    # each task's head predicts only its own classes
    assert model.task_classes == {t: sorted(stream.train_stream[t].classes_in_this_experience) for t in (0, 1)}
    model.eval()
    x = torch.cat([stream.test_stream[t].dataset[i][0].unsqueeze(0) for t in (0, 1) for i in range(8)])
    logits, tasks = model.infer(x)
    with torch.no_grad():
        ents = torch.stack([entropy(model.forward_single_task(x, t)) for t in (0, 1)])
    assert torch.equal(tasks, ents.argmin(0))
    assert set(logits.argmax(1)[tasks == 0].tolist()) <= set(model.task_classes[0])
    metrics = strategy.eval(stream.test_stream)
    # the metric counts the samples of the learned tasks' experiences routed to their own task
    correct = total = 0
    for t in (0, 1):
        xs = torch.stack([stream.test_stream[t].dataset[i][0] for i in range(len(stream.test_stream[t].dataset))])
        with torch.no_grad():
            correct += int((model.infer(xs)[1] == t).sum())
        total += len(xs)
    assert metrics["TaskInference_Acc_Stream/eval_phase/test_stream"] == pytest.approx(correct / total)
    assert "TaskInference_Acc_Exp/eval_phase/test_stream/Exp001" in metrics
    assert "TaskInference_Acc_Exp/eval_phase/test_stream/Exp002" not in metrics  # not learned yet


# ------------------------------------------------------------------------ state
def test_state_dict_round_trip_of_model_and_plugin():
    stream = build_benchmark("split_digits", "class")
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    torch.manual_seed(0)
    model = HyperNetClassifier(net, task_inference=True, **SMALL)
    plugin = HypernetworkPlugin(beta=0.5, lookahead=True)
    strategy = strategy_for(model, [plugin], epochs=1)
    for exp in stream.train_stream[:3]:
        strategy.train(exp)

    torch.manual_seed(123)
    fresh = HyperNetClassifier(net, task_inference=False, **SMALL)
    fresh.load_state_dict(model.state_dict())
    model.eval(), fresh.eval()
    x = torch.randn(7, 1, 8, 8)
    assert fresh.tasks == model.tasks == [0, 1, 2]
    assert fresh.task_classes == model.task_classes and fresh.task_inference
    for t in model.tasks:
        torch.testing.assert_close(fresh.forward_single_task(x, t), model.forward_single_task(x, t))
    torch.testing.assert_close(fresh(x), model(x))

    other = HypernetworkPlugin()
    other.load_state_dict(plugin.state_dict())
    assert (other.beta, other.lookahead, other.trained_tasks) == (0.5, True, [0, 1, 2])
    assert sorted(other.targets) == [0, 1]
    for t in other.targets:
        assert torch.equal(other.targets[t], plugin.targets[t])
    assert hnet_output_regularizer(fresh.hnet, other.targets, 0.5).item() == pytest.approx(
        hnet_output_regularizer(model.hnet, plugin.targets, 0.5).item())


# ------------------------------------------------------------------------ errors
class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 8)
        self.head = nn.Linear(8, 2)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
        self.scale = nn.Parameter(torch.ones(2))


@pytest.mark.parametrize("net, match", [
    (Recurrent(), "module 'rnn' \\(LSTM\\) is not a layer the hypernetwork can generate: build the target"),
    (Scaled(), "the network \\(Scaled\\) holds parameters or buffers of its own besides its submodules"),
    (nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)), "'0' \\(Embedding\\)"),
    (build_network((1, 8, 8), 2, hidden=8, multihead=True), "DynamicModule"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.BatchNorm1d(4, track_running_stats=False)), "running"),
])
def test_unsupported_layers_fail_at_construction(net, match):
    with pytest.raises(UnsupportedTargetError, match=match):
        HyperNetClassifier(net, **SMALL)


def test_task_il_without_task_labels_fails_before_any_update():
    stream = build_benchmark("split_digits", "class")  # every experience has task label 0
    torch.manual_seed(0)
    model = small_model(stream, task_inference=False)
    before = {k: v.clone() for k, v in model.hnet.state_dict().items()}
    strategy = strategy_for(model, [HypernetworkPlugin()])
    with pytest.raises(ValueError, match="distinct task label"):
        strategy.train(stream.train_stream[0])
    after = model.hnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_plugin_rejects_other_models_and_bad_beta():
    stream = build_benchmark("split_digits", "task")
    net = build_network(stream.input_shape, stream.n_outputs, hidden=8, multihead=True)
    strategy = strategy_for(net, [HypernetworkPlugin()])
    with pytest.raises(IncompatibleModelError, match="HyperNetClassifier"):
        strategy.train(stream.train_stream[0])
    with pytest.raises(ValueError, match="beta"):
        HypernetworkPlugin(beta=-1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkedHyperNetwork(10, chunk_size=0)


def test_task_il_model_needs_task_labels_at_forward():
    stream = build_benchmark("split_digits", "task")
    model = small_model(stream)
    model.register_task(0)
    with pytest.raises(ValueError, match="task labels"):
        model(torch.zeros(2, 1, 8, 8))


# ------------------------------------------------------------- recipe and example
def test_recipe_reports_the_compression_ratio():
    from avalanche_ext.protocols import collect_memory_reports
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.registry import get_recipe

    recipe = get_recipe("hnet")
    hp = recipe.resolve("split_digits", {"hidden": 32, "layers": 1, "chunk_size": 1000})
    stream = build_benchmark("split_digits", "task", n_experiences=2)
    strategy = recipe.build(RecipeContext(stream, hp, evaluator=None))
    report = collect_memory_reports(strategy)
    ratio = report["memory.hnet_params"] / report["memory.target_params"]
    assert report["memory.compression_ratio"] == pytest.approx(ratio, abs=1e-4)
    assert report["memory.target_params"] == 64 * 32 + 32 + 32 * 5 + 5  # 5 classes per task


def test_docs_example_runs():
    runpy.run_path(str(ROOT / "docs" / "examples" / "hnet.py"), run_name="__main__")



@pytest.mark.parametrize("device", DEVICES)
def test_state_through_a_file_continues_identically_on_the_strategy_device(device, tmp_path):
    stream = build_benchmark("split_digits", "task", n_experiences=3, seed=0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    torch.manual_seed(0)
    model, plugin = HyperNetClassifier(net, **SMALL), HypernetworkPlugin(beta=0.5)
    first = naive_on(model, plugin, device)
    for exp in stream.train_stream[:2]:
        first.train(exp)
    saved = through_file(model, plugin, tmp_path / "hnet.pt")
    fresh, fresh_plugin = HyperNetClassifier(net, **SMALL), HypernetworkPlugin()
    fresh.load_state_dict(saved["model"])
    fresh_plugin.load_state_dict(saved["plugin"])
    penalties = []
    for pair in ((model, plugin), (fresh, fresh_plugin)):
        continue_each([pair], stream.train_stream[2], device)
        penalties.append(pair[1].last_penalty)
    assert penalties[0] == penalties[1] > 0  # the restored targets of tasks 0 and 1 were used
    assert devices_of(fresh) == {torch.device(device).type}
    assert same_state(model.state_dict(), fresh.state_dict())
