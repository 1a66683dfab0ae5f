"""Piggyback: the backbone never changes, old tasks never change, masks cost one bit per weight."""

from __future__ import annotations

import pytest
import torch
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import DataLoader

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.functional.piggyback import binarize_ste
from avalanche_ext.models import PiggybackConv2d, PiggybackLinear, PiggybackNet, build_network, cnn_features
from avalanche_ext.plugins.piggyback import PiggybackPlugin

HIDDEN = 32


@pytest.fixture(scope="module")
def task_stream():
    return build_benchmark("split_digits", "task")


def _model(seed: int = 0, **kwargs) -> PiggybackNet:
    torch.manual_seed(seed)
    net = build_network((1, 8, 8), 2, hidden=HIDDEN)
    return PiggybackNet(net.features, feature_size=HIDDEN, n_outputs=2, **kwargs)


def _strategy(model: nn.Module, plugin: PiggybackPlugin, *, weight_decay: float = 0.0, epochs: int = 2,
              device: str = "cpu") -> Naive:
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=weight_decay)
    return Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=32,
                 train_epochs=epochs, eval_mb_size=256, device=device, plugins=[plugin],
                 evaluator=EvaluationPlugin(loggers=[]))


def _test_batch(stream, i: int):
    x, _, t = next(iter(DataLoader(stream.test_stream[i].dataset, batch_size=100)))
    return x, int(t[0])


def _predict(model: nn.Module, x: torch.Tensor, task: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, task).clone()


# -- the defining properties -------------------------------------------------------------------
def test_backbone_is_bit_for_bit_unchanged_while_masks_learn(task_stream):
    model = _model()
    strategy = _strategy(model, PiggybackPlugin(), weight_decay=1e-3)
    strategy.train(task_stream.train_stream[0])
    backbone = {name: t.detach().clone() for name, t in model.backbone_tensors()}
    assert backbone and all(not t.requires_grad for _, t in model.backbone_tensors())
    for exp in task_stream.train_stream[1:3]:
        strategy.train(exp)
        for name, tensor in model.backbone_tensors():
            assert torch.equal(tensor, backbone[name]), f"backbone tensor {name} changed"
    # the masks did learn: each new task switched some weights off, differently per task
    layer = model.masked_layers()[0]
    m1, m2 = layer.binary_mask(1), layer.binary_mask(2)
    assert 0 < (m1 == 0).sum() < m1.numel() and 0 < (m2 == 0).sum() < m2.numel()
    assert not torch.equal(m1, m2)


def test_old_tasks_predictions_unchanged_after_new_tasks(task_stream):
    model = _model()
    strategy = _strategy(model, PiggybackPlugin())
    batches = [_test_batch(task_stream, i) for i in range(4)]
    before: dict[int, torch.Tensor] = {}
    for i, exp in enumerate(task_stream.train_stream[:4]):
        strategy.train(exp)
        x, task = batches[i]
        before[task] = _predict(model, x, task)
        for j in range(i):  # every older task answers exactly as when it was learned
            x, task = batches[j]
            assert torch.equal(_predict(model, x, task), before[task])
    # and the tasks are really solved by different networks
    x, _ = batches[0]
    assert not torch.equal(_predict(model, x, 0), _predict(model, x, 1))


def test_consolidation_keeps_predictions_and_stores_one_bit_per_weight(task_stream):
    model = _model(pretrained=True)  # a backbone trained elsewhere: every task learns a mask
    model.add_task(4)
    torch.manual_seed(1)
    for layer in model.masked_layers():  # a learned-looking mask, entries on both sides of the threshold
        layer.masks["4"].data.uniform_(-0.01, 0.02)
    x, _ = _test_batch(task_stream, 0)
    before = _predict(model, x, 4)
    model.consolidate(4)
    assert all(4 in layer.packed and "4" not in layer.masks for layer in model.masked_layers())
    assert torch.equal(_predict(model, x, 4), before)

    plugin = PiggybackPlugin()
    strategy = _strategy(model, plugin, epochs=1)
    strategy.train(task_stream.train_stream[0])
    report = model.memory_report()
    stored = {k: v for k, v in model.state_dict().items() if k.endswith(".bits_0")}  # what task 0 keeps
    assert len(stored) == len(model.masked_layers())
    assert sum(v.numel() * v.element_size() for v in stored.values()) == report["mask_bytes_per_task"]
    head = sum(p.numel() * p.element_size() for p in model.heads["0"].parameters())
    assert report["bytes_per_task"] == report["mask_bytes_per_task"] + head == report["mask_bytes_per_task"] + \
        report["head_bytes_per_task"]
    # 1 bit per weight: 32x smaller than the float32 weights it masks
    weights = sum(layer.weight.numel() * 4 for layer in model.masked_layers())
    assert report["mask_bytes_per_task"] * 32 == pytest.approx(weights, rel=0.01)
    # re-learning a task whose mask is final is refused
    with pytest.raises(ValueError, match="already learned"):
        strategy.train(task_stream.train_stream[0])


def test_masked_layers_compute_the_wrapped_layer_when_the_mask_is_ones():
    torch.manual_seed(0)
    features = cnn_features(1, 16)
    model = PiggybackNet(features, feature_size=16, n_outputs=3, pretrained=True)
    assert isinstance(model.backbone[0], PiggybackConv2d) and isinstance(model.backbone[-2], PiggybackLinear)
    model.add_task(5)  # a new mask starts at mask_scale > threshold: all ones
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        direct = model.heads["5"](features(x))
        assert torch.allclose(model(x, 5), direct, atol=1e-6)
        assert torch.equal(model(x, 7), torch.zeros(4, 3))  # unknown task: zero logits
    # the caller's module is untouched (copy=True)
    assert type(features[0]) is nn.Conv2d


# -- state -------------------------------------------------------------------------------------
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_state_round_trip_through_torch_load_continues_identically_on_the_device(task_stream, device, tmp_path):
    model = _model()
    strategy = _strategy(model, PiggybackPlugin(), epochs=1, device=device)
    for exp in task_stream.train_stream[:3]:
        strategy.train(exp)
    model.add_task(3)  # a mask being learned is saved too
    # the plugin keeps no state: masks and heads live in the model; a checkpoint loads on the CPU
    torch.save(model.state_dict(), tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", map_location="cpu")

    fresh = _model(seed=123)
    fresh.load_state_dict(saved)
    assert fresh.tasks == model.tasks == [0, 1, 2, 3]
    assert fresh.learned == model.learned and fresh.frozen and fresh.dense_tasks == [0]
    assert [n for n, p in fresh.named_parameters() if p.requires_grad] == \
        [n for n, p in model.named_parameters() if p.requires_grad]
    for a, b in zip(fresh.state_dict().values(), saved.values()):
        assert a == b if isinstance(a, dict) else torch.equal(a, b)
    fresh.to(device)
    for i in range(4):
        x, task = _test_batch(task_stream, i)
        assert torch.equal(_predict(fresh, x.to(device), task), _predict(model, x.to(device), task))

    # both continue identically on task 3, on the strategy's device
    after = []
    for net in (model, fresh.cpu()):
        torch.manual_seed(7)
        _strategy(net, PiggybackPlugin(), epochs=1, device=device).train(task_stream.train_stream[3])
        after.append(net.state_dict())
    assert after[0].keys() == after[1].keys()
    for key, value in after[0].items():
        assert value == after[1][key] if isinstance(value, dict) else torch.equal(value, after[1][key])
        if isinstance(value, torch.Tensor):
            assert value.device.type == torch.device(device).type


# -- bad inputs fail before training -----------------------------------------------------------
def test_bad_settings_and_models_are_refused():
    with pytest.raises(ValueError, match="mask_scale"):
        _model(mask_scale=1e-3, threshold=5e-3)
    with pytest.raises(ValueError, match="threshold"):
        _model(threshold=-1.0)
    with pytest.raises(ValueError, match="cannot mask"):
        PiggybackNet(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4)), 4, 2)
    with pytest.raises(ValueError, match="no nn.Linear"):
        PiggybackNet(nn.Sequential(nn.Flatten(), nn.ReLU()), 4, 2)
    with pytest.raises(ValueError, match="feature_size"):
        _model().__class__(nn.Linear(4, 4), 0, 2)


def test_wrong_model_fails_before_any_update(task_stream):
    net = build_network((1, 8, 8), 2, hidden=HIDDEN)
    before = [p.detach().clone() for p in net.parameters()]
    strategy = _strategy(net, PiggybackPlugin())
    with pytest.raises(TypeError, match="PiggybackNet"):
        strategy.train(task_stream.train_stream[0])
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_stream_without_new_task_labels_fails_before_any_update():
    stream = build_benchmark("split_digits", "class")  # every experience has task label 0
    model = PiggybackNet(build_network((1, 8, 8), 10, hidden=HIDDEN).features, HIDDEN, 10)
    strategy = _strategy(model, PiggybackPlugin(), epochs=1)
    strategy.train(stream.train_stream[0])
    state = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(ValueError, match="new task label"):
        strategy.train(stream.train_stream[1])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def _global_label_stream():
    """Two task-IL experiences with Avalanche's default global class ids: [1, 4] then [0, 7]."""
    from avalanche.benchmarks import tensors_benchmark

    g = torch.Generator().manual_seed(0)
    train = []
    for classes in ((1, 4), (0, 7)):
        y = torch.tensor(classes).repeat(16)
        train.append((torch.randn(32, 1, 8, 8, generator=g) + y[:, None, None, None], y))
    return tensors_benchmark(train_tensors=train, test_tensors=train, task_labels=[0, 1])


def test_class_ids_beyond_the_heads_fail_naming_n_outputs_before_any_update():
    stream = _global_label_stream()
    model = _model()  # n_outputs=2, classes [1, 4]
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    strategy = _strategy(model, PiggybackPlugin(), epochs=1)
    with pytest.raises(ValueError, match=r"classes \[1, 4\] .* n_outputs=2 .* n_outputs=5"):
        strategy.train(stream.train_stream[0])
    assert model.tasks == []  # no head was added
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    # a head as wide as the largest class id trains on the same stream
    torch.manual_seed(0)
    wide = PiggybackNet(build_network((1, 8, 8), 8, hidden=HIDDEN).features, HIDDEN, n_outputs=8)
    strategy = _strategy(wide, PiggybackPlugin(), epochs=1)
    for exp in stream.train_stream:
        strategy.train(exp)
    assert wide.learned == [0, 1]


def test_second_dense_task_needs_consolidation():
    model = _model()
    model.add_task(0)
    with pytest.raises(ValueError, match="consolidate"):
        model.add_task(1)
    model.consolidate(0)
    model.add_task(1)
    assert model.frozen and model.masked_layers()[0].masks["1"].requires_grad


# -- the mask maths ----------------------------------------------------------------------------
def test_binarize_is_a_threshold_with_straight_through_gradient():
    real = torch.tensor([-1.0, 0.005, 0.0051, 2.0], requires_grad=True)
    mask = binarize_ste(real, 5e-3)
    assert mask.tolist() == [0.0, 0.0, 1.0, 1.0]
    (mask * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert real.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


# -- the recipe ----------------------------------------------------------------------------------
def test_recipe_never_forgets(tracking_uri):
    from avalanche_ext.recipe import UnsupportedScenarioError
    from avalanche_ext.runner import RunConfig, run

    with pytest.raises(UnsupportedScenarioError):
        run(RunConfig("piggyback", benchmark="split_digits", scenario="class", tracking_uri=tracking_uri))
    result = run(RunConfig("piggyback", benchmark="split_digits", scenario="task", epochs=1,
                           tracking_uri=tracking_uri, progress=False, threads=1))
    matrix = result["acc_matrix"]
    for i in range(5):  # a task's accuracy is fixed once it is learned
        assert all(matrix[j][i] == matrix[i][i] for j in range(i, 5))
