"""Ensemble: one member per experience, old members frozen bit for bit, documented combination rules."""

from __future__ import annotations

import math

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import DataLoader

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.models.ensemble import MASKED_LOGIT, Ensemble
from avalanche_ext.plugins import EnsemblePlugin, restrict_optimizer
from avalanche_ext.runner import RunConfig, run
from device_state import DEVICES, continue_each, devices_of, naive_on, same_state, through_file

HIDDEN = 32


@pytest.fixture(scope="module")
def task_stream():
    return build_benchmark("split_digits", "task")


@pytest.fixture(scope="module")
def class_stream():
    return build_benchmark("split_digits", "class")


def _ensemble(n_outputs: int, mode: str, combine: str = "mean_softmax") -> Ensemble:
    return Ensemble(lambda: build_network((1, 8, 8), n_outputs, hidden=HIDDEN), n_outputs, mode=mode, combine=combine)


def _strategy(model: Ensemble, *, epochs: int = 1) -> Naive:
    # momentum and weight decay would move any frozen parameter left in the optimizer
    optimizer = torch.optim.SGD([{"params": []}], lr=0.05, momentum=0.9, weight_decay=1e-3)
    return Naive(model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=32,
                 train_epochs=epochs, eval_mb_size=256, device="cpu", plugins=[EnsemblePlugin()],
                 evaluator=EvaluationPlugin(loggers=[]))


def _batch(stream, i: int):
    x, y, t = next(iter(DataLoader(stream.test_stream[i].dataset, batch_size=64)))
    return x, y, t


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


# -- the defining properties -------------------------------------------------------------------
def test_one_member_per_experience_old_members_frozen_bit_for_bit(task_stream):
    model = _ensemble(2, "task")
    strategy = _strategy(model)
    snapshots: list[dict[str, torch.Tensor]] = []
    for i, exp in enumerate(task_stream.train_stream[:3]):
        strategy.train(exp)
        assert len(model.members) == i + 1
        assert model.member_tasks == list(range(i + 1))
        # the optimizer holds the newest member's parameters and nothing else
        in_opt = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
        assert in_opt == {id(p) for p in model.members[i].parameters()}
        snapshots.append(_snapshot(model.members[i]))
        for j in range(i + 1):  # every member, old ones included, is exactly as it was after its experience
            now = model.members[j].state_dict()
            assert all(torch.equal(now[k], v) for k, v in snapshots[j].items())
            assert not any(p.requires_grad for p in model.members[j].parameters())
    # the member really learned (it moved away from a fresh initialisation)
    assert model.members[0].features[1].weight.abs().sum() > 0


def test_task_label_picks_the_member(task_stream):
    model = _ensemble(2, "task")
    strategy = _strategy(model)
    for exp in task_stream.train_stream[:2]:
        strategy.train(exp)
    model.eval()
    x, _, _ = _batch(task_stream, 0)
    mixed = torch.tensor([0, 1] * (len(x) // 2) + [0] * (len(x) % 2))
    with torch.no_grad():
        out = model(x, mixed)
        for task in (0, 1):
            rows = mixed == task
            assert torch.equal(out[rows], model.members[task](x[rows]))
        assert torch.equal(model(x, 4), torch.zeros(len(x), 2))  # no member for task 4 yet


def test_class_mode_trains_the_new_member_on_its_own_classes(class_stream):
    model = _ensemble(10, "class")
    strategy = _strategy(model, epochs=2)
    for exp in class_stream.train_stream[:2]:
        strategy.train(exp)
    assert model.member_classes == [sorted(e.classes_in_this_experience) for e in class_stream.train_stream[:2]]
    x, y, _ = _batch(class_stream, 1)
    model.train()
    model.active = 1
    logits = model(x, None)  # training forward: the active member, other classes masked
    assert (logits[:, [c for c in range(10) if c not in model.member_classes[1]]] == MASKED_LOGIT).all()
    model.active = None
    model.eval()
    with torch.no_grad():
        log_p = model(x, None)
    assert torch.allclose(log_p.exp().sum(1), torch.ones(len(x)), atol=1e-4)
    seen = set(model.member_classes[0]) | set(model.member_classes[1])
    assert set(log_p.argmax(1).tolist()) <= seen
    assert (log_p.argmax(1) == y).float().mean() > 0.5  # both members contribute correct answers


# -- the combination rules ---------------------------------------------------------------------
class _Fixed(nn.Module):
    def __init__(self, logits: list[float]):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def _fixed_ensemble(rule: str, members: list[tuple[list[float], list[int]]]) -> Ensemble:
    queue = [m for m, _ in members]
    model = Ensemble(lambda: _Fixed(queue.pop(0)), 4, mode="class", combine=rule)
    for _, classes in members:
        model.add_member(0, classes)
    return model.eval()


def test_combination_rules_match_their_definitions():
    # member 0 owns classes {0,1} and is unsure; member 1 owns {2,3} and is sure of class 3
    members = [([0.0, 0.1, 9.0, 9.0], [0, 1]), ([9.0, 9.0, 0.0, 3.0], [2, 3])]
    p0 = torch.softmax(torch.tensor([0.0, 0.1]), 0)
    p1 = torch.softmax(torch.tensor([0.0, 3.0]), 0)
    x = torch.zeros(2, 1)
    mean = _fixed_ensemble("mean_softmax", members)(x)[0].exp()
    assert torch.allclose(mean, torch.cat([p0, p1]) / 2, atol=1e-6)
    best = _fixed_ensemble("max_confidence", members)(x)[0].exp()
    assert torch.allclose(best, torch.cat([torch.zeros(2), p1]), atol=1e-6)
    assert mean.argmax() == best.argmax() == 3  # disjoint classes: the same prediction
    # shared classes (domain-IL): the rules can disagree
    shared = [([2.0, 0.0, 0, 0], [0, 1]), ([0.0, 2.0, 0, 0], [0, 1]), ([0.0, 2.5, 0, 0], [0, 1])]
    assert _fixed_ensemble("mean_softmax", shared)(x)[0].argmax() == 1
    shared = [([3.0, 0.0, 0, 0], [0, 1]), ([0.0, 1.0, 0, 0], [0, 1]), ([0.0, 1.0, 0, 0], [0, 1])]
    assert _fixed_ensemble("max_confidence", shared)(x)[0].argmax() == 0
    assert _fixed_ensemble("mean_softmax", shared)(x)[0].argmax() == 1
    with torch.no_grad():
        assert math.isfinite(float(_fixed_ensemble("mean_softmax", shared)(x).min()))


# -- state -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["task", "class"])
def test_state_round_trip(mode, task_stream, class_stream):
    stream = task_stream if mode == "task" else class_stream
    n_outputs = stream.n_outputs
    model = _ensemble(n_outputs, mode)
    strategy = _strategy(model)
    for exp in stream.train_stream[:2]:
        strategy.train(exp)
    model.add_member(7, [0, 1])  # a member still being trained is saved too
    fresh = _ensemble(n_outputs, mode)
    fresh.load_state_dict(model.state_dict())
    assert fresh.member_tasks == model.member_tasks and fresh.member_classes == model.member_classes
    assert fresh.frozen == model.frozen == [True, True, False] and fresh.active == 2
    assert [p.requires_grad for p in fresh.parameters()] == [p.requires_grad for p in model.parameters()]
    x, _, t = _batch(stream, 1)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x, t), model(x, t))
    with pytest.raises(ValueError, match="combine"):
        _ensemble(n_outputs, mode, combine="max_confidence").load_state_dict(model.state_dict())


# -- bad inputs fail before training -----------------------------------------------------------
def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mode"):
        _ensemble(2, "domain")
    with pytest.raises(ValueError, match="combine"):
        _ensemble(2, "class", combine="vote")
    with pytest.raises(ValueError, match="n_outputs"):
        _ensemble(0, "task")
    with pytest.raises(ValueError, match="outside"):
        _ensemble(2, "class").add_member(0, [1, 2])
    with pytest.raises(ValueError, match="nn.Module"):
        Ensemble(lambda: "not a module", 2).add_member(0, [0])


def test_wrong_model_fails_before_any_update(task_stream):
    net = build_network((1, 8, 8), 2, hidden=HIDDEN)
    before = _snapshot(net)
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), criterion=nn.CrossEntropyLoss(),
                     plugins=[EnsemblePlugin()], evaluator=EvaluationPlugin(loggers=[]))
    with pytest.raises(TypeError, match="Ensemble"):
        strategy.train(task_stream.train_stream[0])
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_task_mode_without_new_task_labels_fails_before_any_update(class_stream):
    model = _ensemble(10, "task")
    strategy = _strategy(model)
    strategy.train(class_stream.train_stream[0])
    before = _snapshot(model)
    with pytest.raises(ValueError, match="new task label"):
        strategy.train(class_stream.train_stream[1])
    assert len(model.members) == 1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_restrict_optimizer_drops_everything_else():
    a, b, c = (nn.Parameter(torch.ones(2)) for _ in range(3))
    opt = torch.optim.SGD([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in (a, b, c):
        p.grad = torch.ones(2)
    opt.step()
    restrict_optimizer(opt, [c, b])
    assert [g["params"] for g in opt.param_groups] == [[b], [c]] and len(opt.state) == 0
    a_before = a.detach().clone()
    opt.step()  # a still has a gradient and momentum history, but is no longer optimised
    assert torch.equal(a, a_before)


# -- the recipe ----------------------------------------------------------------------------------
def test_recipe_task_il_never_forgets(tracking_uri):
    result = run(RunConfig("ensemble", benchmark="split_digits", scenario="task", epochs=1,
                           tracking_uri=tracking_uri, progress=False, threads=1))
    matrix = result["acc_matrix"]
    assert len(matrix) == 5
    for i in range(5):  # the accuracy on a task is fixed once its member is trained
        assert all(matrix[j][i] == matrix[i][i] for j in range(i, 5))
    assert result["forgetting"] == 0.0



# -- drop-in: the optimizer a user passes to any Avalanche strategy ------------------------------
def test_stock_naive_with_adam_over_model_parameters(task_stream):
    torch.manual_seed(0)
    model = _ensemble(2, "task")
    assert sum(p.numel() for p in model.parameters()) > 0  # the first member waits in next_member
    first = model.next_member
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=32, eval_mb_size=256,
                     plugins=[EnsemblePlugin()], evaluator=EvaluationPlugin(accuracy_metrics(experience=True),
                                                                             loggers=[]))
    strategy.train(task_stream.train_stream[0])
    assert model.members[0] is first and model.next_member is None
    after_first = _snapshot(model.members[0])
    strategy.train(task_stream.train_stream[1])
    opt = strategy.optimizer
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.members[1].parameters()}
    assert opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["weight_decay"] == 1e-4  # the user's settings
    assert all(torch.equal(v, model.members[0].state_dict()[k]) for k, v in after_first.items())
    acc = strategy.eval(task_stream.test_stream[:2])
    assert all(acc[f"Top1_Acc_Exp/eval_phase/test_stream/Task00{i}/Exp00{i}"] > 0.8 for i in range(2))


@pytest.mark.parametrize("device", DEVICES)
def test_state_through_a_file_continues_identically_on_the_strategy_device(device, task_stream, tmp_path):
    torch.manual_seed(0)
    model, plugin = _ensemble(2, "task"), EnsemblePlugin()
    strategy = naive_on(model, plugin, device, lr=0.01)
    for exp in task_stream.train_stream[:2]:
        strategy.train(exp)
    saved = through_file(model, plugin, tmp_path / "ensemble.pt")
    fresh, fresh_plugin = _ensemble(2, "task"), EnsemblePlugin()
    fresh.load_state_dict(saved["model"])
    fresh_plugin.load_state_dict(saved["plugin"])
    assert fresh_plugin.experience_members == plugin.experience_members == {0: 0, 1: 1}
    continue_each([(model, plugin), (fresh, fresh_plugin)], task_stream.train_stream[2], device, lr=0.01)
    assert devices_of(fresh) == {torch.device(device).type}
    assert same_state(model.state_dict(), fresh.state_dict())
