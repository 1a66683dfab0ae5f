"""Deep generative replay: the frozen previous model labels the replay, the 1/t weighting, the image VAE."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin

from avalanche_ext.functional.generative_replay import (
    hard_targets, replay_weight, soft_target_loss, weighted_replay_loss,
)
from avalanche_ext.models.image_vae import ImageVAE
from avalanche_ext.plugins.deep_generative_replay import DeepGenerativeReplayPlugin
from tiny_streams import tiny_naive, two_class_stream


class BankGenerator(torch.nn.Module):
    """A generator whose samples are rows of a fixed bank; records what its loss was given."""

    def __init__(self, dim: int = 6, size: int = 64, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("bank", torch.randn(size, dim, generator=g) * 2)
        self.shift = torch.nn.Parameter(torch.zeros(dim))
        self.n_sampled = 0
        self.loss_inputs: list[torch.Tensor] = []

    def loss(self, x):
        self.loss_inputs.append(x.detach().clone())
        return ((x - self.shift) ** 2).mean()

    def sample(self, n):
        self.n_sampled += n
        return self.bank[:n] + self.shift.detach()


class LossProbe(SupervisedPlugin):
    """Placed before and after the replay plugin: the loss before it acted, and after."""

    def __init__(self, dgr: DeepGenerativeReplayPlugin, record: list, phase: str):
        super().__init__()
        self.dgr, self.record, self.phase = dgr, record, phase

    def before_backward(self, strategy, **kwargs):
        if self.phase == "before":
            self.record.append({"exp": strategy.experience.current_experience, "current": strategy.loss.detach().clone(),
                                "model": copy.deepcopy(strategy.model), "mb_x": strategy.mb_x.clone()})
            return
        row = self.record[-1]
        row["total"] = strategy.loss.detach().clone()
        row["old_model"] = None if self.dgr.old_model is None else copy.deepcopy(self.dgr.old_model)


def train_with_probes(targets: str = "hard", n_exp: int = 3, generator_iterations: int = 3):
    stream = two_class_stream(n_exp=n_exp)
    gen = BankGenerator()
    dgr = DeepGenerativeReplayPlugin(gen, generator_iterations=generator_iterations, targets=targets, temperature=2.0)
    record: list = []
    strategy = tiny_naive([LossProbe(dgr, record, "before"), dgr, LossProbe(dgr, record, "after")], train_mb_size=10)
    snapshots = []
    for exp in stream.train_stream:
        snapshots.append(copy.deepcopy(strategy.model).eval())  # the model as the experience starts
        strategy.train(exp)
    return stream, gen, dgr, record, snapshots, strategy


def test_replay_weight_counts_every_task_seen_alike():
    assert replay_weight(1) == 0.0
    assert replay_weight(2) == pytest.approx(0.5)
    assert replay_weight(5) == pytest.approx(0.8)
    cur, rep = torch.tensor(3.0), torch.tensor(7.0)
    assert float(weighted_replay_loss(cur, rep, 4)) == pytest.approx(3.0 / 4 + 7.0 * 3 / 4)
    with pytest.raises(ValueError, match="n_tasks"):
        replay_weight(0)


def test_no_replay_on_the_first_experience():
    _, gen, dgr, record, _, _ = train_with_probes(n_exp=1)
    first = [r for r in record if r["exp"] == 0]
    assert first and all(torch.equal(r["current"], r["total"]) and r["old_model"] is None for r in first)
    assert gen.n_sampled == 0  # the generator was trained but never sampled
    assert dgr.n_trained == 1 and dgr.seen_classes == [0, 1]


def test_replay_is_labelled_by_the_frozen_previous_model_and_weighted_by_tasks_seen():
    _, gen, dgr, record, snapshots, _ = train_with_probes(targets="hard")
    later = [r for r in record if r["exp"] > 0]
    assert later
    changed = 0
    for r in later:
        t = r["exp"] + 1
        teacher = snapshots[r["exp"]]
        # the frozen copy is the model as it was when the experience started, not the model being trained
        for p_old, p_snap in zip(r["old_model"].parameters(), teacher.parameters()):
            assert torch.equal(p_old, p_snap)
        changed += any(not torch.equal(a, b) for a, b in zip(r["model"].parameters(), teacher.parameters()))
        x = gen.bank[: len(r["mb_x"])] + _frozen_shift[r["exp"]]  # what the frozen generator copy draws
        seen = list(range(2 * r["exp"]))
        labels = hard_targets(teacher(x), seen)
        assert set(labels.tolist()) <= set(seen)
        replay = F.cross_entropy(r["model"](x), labels)
        expected = r["current"] / t + replay * (t - 1) / t
        assert torch.allclose(r["total"], expected, atol=1e-5)
    assert changed  # the trained model moved away from the teacher during the experience


_frozen_shift: dict[int, torch.Tensor] = {}


@pytest.fixture(autouse=True)
def _record_generator_shifts(monkeypatch):
    """Remember the shift of every frozen generator copy, keyed by the experience it serves."""
    original = DeepGenerativeReplayPlugin.before_training_exp

    def spy(self, strategy, *args, **kwargs):
        original(self, strategy, *args, **kwargs)
        if self.old_generator is not None:
            _frozen_shift[strategy.experience.current_experience] = self.old_generator.shift.detach().clone()

    monkeypatch.setattr(DeepGenerativeReplayPlugin, "before_training_exp", spy)
    _frozen_shift.clear()
    yield


def test_soft_targets_distil_the_old_classes_and_push_the_new_ones_down():
    _, gen, dgr, record, snapshots, _ = train_with_probes(targets="soft")
    r = [r for r in record if r["exp"] == 2][-1]
    x = gen.bank[: len(r["mb_x"])] + _frozen_shift[2]
    teacher, student = snapshots[2](x), r["model"](x)
    expected = soft_target_loss(student, teacher, [0, 1, 2, 3], 2.0)
    assert torch.allclose(r["total"], r["current"] / 3 + expected * 2 / 3, atol=1e-5)
    # the target puts no probability on a class the teacher never learned
    logits = torch.tensor([[2.0, 0.0, 5.0]])
    target_on_old = torch.tensor([[2.0, 0.0, -30.0]])
    assert float(soft_target_loss(target_on_old, logits, [0, 1])) < float(soft_target_loss(logits, logits, [0, 1]))


def test_the_generator_learns_real_data_mixed_with_its_frozen_copy():
    _, gen, dgr, _, _, _ = train_with_probes(n_exp=2, generator_iterations=2)
    # experience 0: real batches only; experience 1: each real batch followed by as many replayed samples
    first, second = gen.loss_inputs[:2], gen.loss_inputs[2:]
    assert len(first) == 2 and len(second) == 4
    real, replayed = second[0], second[1]
    assert len(real) == len(replayed)
    assert torch.allclose(replayed, gen.bank[: len(replayed)] + _frozen_shift[1])


def test_state_round_trip():
    _, gen, dgr, _, _, _ = train_with_probes(n_exp=2)
    state = dgr.state_dict()
    other = DeepGenerativeReplayPlugin(BankGenerator(seed=1), generator_iterations=7, targets="soft")
    other.load_state_dict(state)
    assert other.n_trained == 2 and other.seen_classes == [0, 1, 2, 3] and other.targets == "hard"
    assert other.generator_iterations == 3
    assert torch.equal(other.generator.shift, gen.shift) and torch.equal(other.generator.bank, gen.bank)
    a, b = dgr.generator_optimizer.state_dict()["state"], other.generator_optimizer.state_dict()["state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)
    assert other.n_tasks == 3


def test_bad_arguments_are_refused():
    gen = BankGenerator()
    with pytest.raises(ValueError, match="loss"):
        DeepGenerativeReplayPlugin(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="targets"):
        DeepGenerativeReplayPlugin(gen, targets="fuzzy")
    with pytest.raises(ValueError, match="generator_iterations"):
        DeepGenerativeReplayPlugin(gen, generator_iterations=-1)
    with pytest.raises(ValueError, match="temperature"):
        DeepGenerativeReplayPlugin(gen, temperature=0)


def test_image_vae_learns_and_samples_images_in_the_unit_range():
    torch.manual_seed(0)
    vae = ImageVAE((1, 6, 6), hidden=(32,), latent_dim=4)
    x = (torch.rand(64, 1, 6, 6) > 0.7).float()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-2)
    before = float(vae.loss(x))
    for _ in range(150):
        opt.zero_grad()
        loss = vae.loss(x)
        loss.backward()
        opt.step()
    assert float(vae.loss(x)) < 0.8 * before
    s = vae.sample(5)
    assert s.shape == (5, 1, 6, 6) and float(s.min()) >= 0 and float(s.max()) <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vae.loss(x * 2 - 1)
    with pytest.raises(ValueError, match="latent_dim"):
        ImageVAE((1, 6, 6), latent_dim=0)
