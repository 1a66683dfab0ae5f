"""MIRPlugin: what it replays, how it chooses, what its memory keeps; and the Avalanche 0.6.0 pool it replaces."""

import copy
from types import SimpleNamespace

import pytest
import torch
from avalanche.training.plugins import MIRPlugin as AvalancheMIRPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer
from tiny_streams import tiny_naive, two_class_stream

from avalanche_ext.plugins.mir import MIRPlugin


class RecordingMIR(MIRPlugin):
    """Records the labels of the memory samples replayed in the current experience."""

    def before_training_exp(self, strategy, **kwargs):
        self.replayed = []

    def most_interfered(self, strategy, x, y, t):
        chosen = super().most_interfered(strategy, x, y, t)
        self.replayed.extend(y[chosen].tolist())
        return chosen


def _train(plugin, bm, n_exp):
    torch.manual_seed(0)
    strategy = tiny_naive([plugin], train_mb_size=6)
    for exp in bm.train_stream[:n_exp]:
        strategy.train(exp)
    return strategy


def test_the_experience_just_learned_is_replayed_unlike_avalanche():
    bm = two_class_stream(3)
    ours = RecordingMIR(mem_size=30, subsample=10, batch_size_mem=4)
    _train(ours, bm, 3)
    assert {2, 3} <= set(ours.replayed)  # experience 1's classes, replayed while experience 2 trains
    assert set(ours.replayed) <= {0, 1, 2, 3}  # the memory holds only what came before experience 2

    theirs = AvalancheMIRPlugin(batch_size_mem=4, mem_size=30, subsample=10)
    _train(theirs, bm, 2)
    pool = {int(c) for _ in range(20) for c in next(theirs.replay_loader)[1]}
    assert pool == {0, 1}  # Avalanche's pool, used while experience 2 trains, lacks experience 1's classes


def test_labels_shared_by_every_experience_are_replayed_unlike_avalanche():
    from avalanche.benchmarks import tensors_benchmark

    g = torch.Generator().manual_seed(0)
    data = []
    for e in range(3):  # task-incremental: every task has labels 0 and 1
        y = torch.tensor([0, 1]).repeat(15)
        data.append((torch.randn(30, 6, generator=g) + y[:, None] + 3 * e, y))
    bm = tensors_benchmark(train_tensors=data, test_tensors=data, task_labels=[0, 1, 2])
    ours = RecordingMIR(mem_size=30, subsample=10, batch_size_mem=4)
    _train(ours, bm, 3)
    assert len(ours.replayed) > 0 and set(ours.replayed) == {0, 1}

    theirs = AvalancheMIRPlugin(batch_size_mem=4, mem_size=30, subsample=10)
    _train(theirs, bm, 2)
    assert theirs.replay_loader is None  # its pool lost every class: nothing to replay


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replays_the_candidates_whose_loss_a_virtual_sgd_step_raises_most(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    xb, yb = torch.randn(6, 5), torch.randint(0, 3, (6,))
    xc, yc, tc = torch.randn(20, 5), torch.randint(0, 3, (20,)), torch.zeros(20, dtype=torch.long)
    lr = 0.5
    strategy = SimpleNamespace(model=model, loss=torch.nn.functional.cross_entropy(model(xb), yb),
                               optimizer=torch.optim.SGD(model.parameters(), lr=lr))
    chosen = MIRPlugin(mem_size=20, subsample=20, batch_size_mem=5).most_interfered(strategy, xc, yc, tc)

    stepped = copy.deepcopy(model)  # the step, taken for real on a copy
    opt = torch.optim.SGD(stepped.parameters(), lr=lr)
    torch.nn.functional.cross_entropy(stepped(xb), yb).backward()
    opt.step()
    with torch.no_grad():
        rise = (torch.nn.functional.cross_entropy(stepped(xc), yc, reduction="none")
                - torch.nn.functional.cross_entropy(model(xc), yc, reduction="none"))
    assert set(chosen.tolist()) == set(rise.argsort(descending=True)[:5].tolist())
    assert strategy.loss.requires_grad  # the graph survives for the real backward


def test_scoring_changes_no_parameter_and_no_module_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    model.train()
    model[1].eval()  # a module a method keeps in eval mode while training
    before = copy.deepcopy(model.state_dict())
    xb, yb = torch.randn(6, 5), torch.randint(0, 3, (6,))
    strategy = SimpleNamespace(model=model, loss=torch.nn.functional.cross_entropy(model(xb), yb),
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    MIRPlugin(mem_size=8, subsample=8, batch_size_mem=2).most_interfered(
        strategy, torch.randn(8, 5), torch.randint(0, 3, (8,)), torch.zeros(8, dtype=torch.long))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and model[0].training and not model[1].training


def test_memory_is_a_class_balanced_reservoir_within_its_size():
    plugin = MIRPlugin(mem_size=12, subsample=4, batch_size_mem=2)
    bm = two_class_stream(3)
    _train(plugin, bm, 3)
    labels = [int(plugin.storage_policy.buffer[i][1]) for i in range(len(plugin.storage_policy.buffer))]
    assert len(labels) == 12 and all(labels.count(c) == 2 for c in range(6))


def test_plain_random_replay_when_every_candidate_is_replayed():
    torch.manual_seed(0)
    plugin = MIRPlugin(mem_size=10, subsample=6, batch_size_mem=6)
    model = torch.nn.Linear(4, 2)
    xb, yb = torch.randn(3, 4), torch.tensor([0, 1, 0])
    strategy = SimpleNamespace(model=model, loss=torch.nn.functional.cross_entropy(model(xb), yb),
                               optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    chosen = plugin.most_interfered(strategy, torch.randn(6, 4), torch.randint(0, 2, (6,)), torch.zeros(6))
    assert sorted(chosen.tolist()) == list(range(6))


@pytest.mark.parametrize("kwargs,match", [
    (dict(mem_size=0), "mem_size"),
    (dict(subsample=5, batch_size_mem=10), "subsample >= batch_size_mem"),
    (dict(batch_size_mem=2.5), "batch_size_mem"),
    (dict(mem_size=10, storage_policy=ClassBalancedBuffer(max_size=20)), "max_size=10"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MIRPlugin(**kwargs)
