"""Generative Negative Replay: negatives never train old-class outputs; CWR* head; the latent VAE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.models.latent_vae import LatentVAE, train_continually
from avalanche_ext.functional.cwr import consolidate, start_weights
from avalanche_ext.functional.negative_replay import restrict_gradient
from avalanche_ext.models.latent_split import LatentLayerError
from avalanche_ext.plugins import CWRStarHead, GenerativeLatentReplayPlugin
from avalanche_ext.protocols import collect_memory_reports

FAST_VAE = dict(vae_epochs=1, vae_hidden=32, code_dim=8, replay_per_class=20)


@pytest.fixture(scope="module")
def stream():
    return build_benchmark("split_digits", "class", seed=0)


def make_strategy(stream, plugins, *, seed=0):
    torch.manual_seed(seed)
    model = build_network(stream.input_shape, stream.n_outputs, hidden=32)
    strategy = Naive(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=32, train_epochs=1, eval_mb_size=256, plugins=plugins, evaluator=EvaluationPlugin(loggers=[]),
    )
    return model, strategy


class ReplayGradProbe(SupervisedPlugin):
    """Gradient of the generated samples' loss alone on the output layer, at every replayed minibatch."""

    def __init__(self, gen: GenerativeLatentReplayPlugin):
        super().__init__()
        self.gen = gen
        self.grads: list[tuple[torch.Tensor, list[int]]] = []

    def before_backward(self, strategy, *args, **kwargs):
        b = self.gen._n_new
        if len(strategy.mb_y) == b:
            return
        loss = F.cross_entropy(strategy.mb_output[b:], strategy.mb_y[b:])
        weight = strategy.model.classifier.weight
        (g,) = torch.autograd.grad(loss, weight, retain_graph=True)
        self.grads.append((g, list(self.gen._current)))


@pytest.mark.parametrize("with_cwr", [True, False])
def test_generated_negatives_give_exactly_zero_gradient_to_old_class_outputs(stream, with_cwr):
    gen = GenerativeLatentReplayPlugin("features", negative=True, replay_batch_size=16, **FAST_VAE)
    probe = ReplayGradProbe(gen)
    plugins = ([CWRStarHead("classifier", old_rows="consolidated", mean_shift=False)] if with_cwr else []) + [gen, probe]
    _, strategy = make_strategy(stream, plugins)
    exps = list(stream.train_stream)
    for exp in exps[:3]:
        strategy.train(exp)
    assert probe.grads, "no generated latents were replayed"
    for g, current in probe.grads:
        old = [c for c in range(10) if c not in current]
        assert torch.count_nonzero(g[old]) == 0
        assert torch.count_nonzero(g[current]) > 0


def test_positive_generated_replay_does_train_old_class_outputs(stream):
    gen = GenerativeLatentReplayPlugin("features", negative=False, replay_batch_size=16, **FAST_VAE)
    probe = ReplayGradProbe(gen)
    _, strategy = make_strategy(stream, [CWRStarHead("classifier"), gen, probe])
    for exp in list(stream.train_stream)[:2]:
        strategy.train(exp)
    g, current = probe.grads[-1]
    old = [c for c in gen.known_classes if c not in current]
    assert torch.count_nonzero(g[old]) > 0


def test_restrict_gradient_keeps_values_and_blocks_other_columns():
    w = torch.randn(5, 3, requires_grad=True)
    x = torch.randn(6, 3)
    out = restrict_gradient(x @ w.T, slice(2, None), [1, 3])
    assert torch.equal(out, x @ w.T)
    F.cross_entropy(out[2:], torch.tensor([0, 2, 4, 0])).backward()
    assert torch.count_nonzero(w.grad[[0, 2, 4]]) == 0 and torch.count_nonzero(w.grad[[1, 3]]) > 0


def test_consolidation_is_the_count_weighted_cwr_star_mean_hand_checked():
    cw, seen, past = torch.zeros(3, 2), torch.zeros(3, dtype=torch.bool), torch.zeros(3)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]])
    cw1, seen1, past1 = consolidate(cw, seen, past, w, {0: 10, 1: 30}, mean_shift=True)
    assert torch.equal(cw1, torch.tensor([[-1.5, -0.5], [0.5, 1.5], [0.0, 0.0]]))  # rows minus their mean 2.5
    assert seen1.tolist() == [True, True, False] and past1.tolist() == [10.0, 30.0, 0.0]
    assert not seen.any() and torch.equal(cw, torch.zeros(3, 2))  # the arguments are left alone
    # class 0 again on 40 samples after 10: r = sqrt(10 / 40) = 0.5, cw = (0.5 cw + w) / 1.5
    cw2, _, past2 = consolidate(cw1, seen1, past1, torch.full((3, 2), 4.0), {0: 40}, mean_shift=False)
    assert torch.allclose(cw2[0], (0.5 * cw1[0] + 4.0) / 1.5) and torch.equal(cw2[1:], cw1[1:])
    assert past2.tolist() == [50.0, 30.0, 0.0]


def test_start_weights_hold_zero_or_consolidated_old_rows():
    cw, seen = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), torch.tensor([True, True, False])
    assert start_weights(cw, seen, [1, 2], old_rows="zero").tolist() == [[0, 0], [2, 2], [0, 0]]
    assert start_weights(cw, seen, [1, 2], old_rows="consolidated").tolist() == [[1, 1], [2, 2], [0, 0]]
    with pytest.raises(ValueError, match="old_rows"):
        start_weights(cw, seen, [0], old_rows="frozen")


def test_memory_report_gives_the_generator_size_before_and_after_training(stream):
    gen = GenerativeLatentReplayPlugin("features", **FAST_VAE)
    assert gen.memory_report() == {}
    model, strategy = make_strategy(stream, [CWRStarHead("classifier"), gen])
    gen.measure(model, stream.input_shape)
    before = collect_memory_reports(strategy)
    strategy.train(next(iter(stream.train_stream)))
    vae_bytes = sum(p.numel() * p.element_size() for p in gen.vae.parameters())
    assert before["memory.generator_bytes"] == vae_bytes == gen.memory_report()["generator_bytes"]
    assert before["memory.equal_bytes.samples"] == vae_bytes // (32 * 4)  # 32-d latents as float32
    assert before["memory.equal_bytes.raw_bytes_uint8"] == vae_bytes // (32 * 4) * 64  # 8x8 pixels
    assert collect_memory_reports(strategy)["memory.consolidated_bytes"] == 10 * 32 * 4 + 10 + 10 * 4


@pytest.mark.parametrize("old_rows", ["zero", "consolidated"])
def test_cwr_star_head_keeps_old_rows_fixed_and_consolidates(stream, old_rows):
    cwr = CWRStarHead("classifier", old_rows=old_rows)
    model, strategy = make_strategy(stream, [cwr])
    exps = list(stream.train_stream)
    strategy.train(exps[0])
    first = exps[0].classes_in_this_experience
    assert torch.equal(model.classifier.weight[first], cwr.cw[first])
    cw_first = cwr.cw[first].clone()

    class RowProbe(SupervisedPlugin):
        rows: list = []

        def after_update(self, s, *a, **k):
            self.rows.append(s.model.classifier.weight[first].detach().clone())

    probe = RowProbe()
    strategy.plugins.append(probe)
    strategy.train(exps[1])
    expected = cw_first if old_rows == "consolidated" else torch.zeros_like(cw_first)
    assert probe.rows and all(torch.equal(r, expected) for r in probe.rows)
    assert torch.equal(cwr.cw[first], cw_first)  # not trained, not re-consolidated
    assert torch.count_nonzero(model.classifier.bias) == 0
    assert cwr.seen.sum() == 4
    clone = CWRStarHead("classifier")
    clone.load_state_dict(cwr.state_dict())
    assert torch.equal(clone.cw, cwr.cw) and torch.equal(clone.past, cwr.past) and torch.equal(clone.seen, cwr.seen)


def test_state_round_trip_of_generator_and_plugin(stream, tmp_path):
    gen = GenerativeLatentReplayPlugin("features", negative=True, seed=5, **FAST_VAE)
    _, strategy = make_strategy(stream, [CWRStarHead("classifier"), gen])
    for exp in list(stream.train_stream)[:2]:
        strategy.train(exp)
    torch.save(gen.state_dict(), tmp_path / "plugin.pt")
    state = torch.load(tmp_path / "plugin.pt")  # weights_only: tensors and plain values only
    clone = GenerativeLatentReplayPlugin("features", negative=True, **FAST_VAE)
    clone.load_state_dict(state)
    assert clone.known_classes == gen.known_classes and clone.experiences_seen == 2
    for (k, a), b in zip(gen.vae.state_dict().items(), clone.vae.state_dict().values()):
        assert torch.equal(a, b), k
    clone._current = gen._current = []
    za, ya = gen.replay_batch(8, strategy)
    zb, yb = clone.replay_batch(8, strategy)
    assert torch.equal(za, zb) and torch.equal(ya, yb)
    assert set(ya.tolist()) <= set(gen.known_classes)


def test_vae_remembers_old_classes_through_self_replay():
    torch.manual_seed(0)
    means = [torch.full((6,), 1.0), torch.cat([torch.full((3,), 4.0), torch.zeros(3)])]
    vae = LatentVAE(6, n_classes=2, hidden=32, code_dim=4)
    for c, m in enumerate(means):
        z = (m + 0.2 * torch.randn(400, 6)).clamp_min(0)
        losses = train_continually(vae, z, torch.full((400,), c), epochs=30, batch_size=64, lr=3e-3, seed=c)
        assert losses[-1] < losses[0]
    assert vae.seen_classes == [0, 1]
    z0, y0 = vae.sample(200, classes=[0], generator=torch.Generator().manual_seed(0))
    assert (y0 == 0).all() and (z0 >= 0).all()
    d_own = (z0 - means[0]).norm(dim=1).mean()
    d_other = (z0 - means[1]).norm(dim=1).mean()
    assert d_own < d_other


def test_sampling_temperature_scales_the_code():
    vae = LatentVAE(6, n_classes=3, hidden=16, code_dim=4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    z0, _ = vae.sample(6, labels=labels, temperature=0.0)
    assert torch.equal(z0, vae.decode(torch.zeros(6, 4), labels))  # the code at the prior's mean
    za, _ = vae.sample(6, labels=labels, generator=torch.Generator().manual_seed(1), temperature=2.0)
    u = 2.0 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(za, vae.decode(u, labels))
    with pytest.raises(ValueError, match="temperature"):
        vae.sample(2, labels=labels[:2], temperature=-1.0)


def test_wrong_latent_or_output_layer_fails_before_any_update(stream):
    for plugins, match in [
        ([CWRStarHead("classifier"), GenerativeLatentReplayPlugin("encoder", **FAST_VAE)], "no layer named 'encoder'"),
        ([CWRStarHead("head"), GenerativeLatentReplayPlugin("features", **FAST_VAE)], "CWR\\* output layer"),
        ([CWRStarHead("features"), GenerativeLatentReplayPlugin("features", **FAST_VAE)], "must be an nn.Linear"),
    ]:
        model, strategy = make_strategy(stream, plugins)
        before = [p.detach().clone() for p in model.parameters()]
        with pytest.raises(LatentLayerError, match=match):
            strategy.train(next(iter(stream.train_stream)))
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_invalid_settings_raise():
    with pytest.raises(ValueError, match="conditional"):
        GenerativeLatentReplayPlugin(negative=False, conditional=False)
    for kwargs in ({"vae_epochs": 0}, {"code_dim": 0}, {"vae_lr": 0.0}, {"beta": -1.0}, {"replay_per_class": 0}):
        with pytest.raises(ValueError):
            GenerativeLatentReplayPlugin(**kwargs)
    with pytest.raises(ValueError):
        CWRStarHead("classifier", old_rows="frozen")
    with pytest.raises(ValueError):
        LatentVAE(0)


def test_gnr_recipe_runs_and_reports_generator_memory(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    out = run(RunConfig(recipe="gnr", benchmark="split_digits", scenario="class", epochs=1,
                        overrides={"vae_epochs": 1, "vae_hidden": 32},
                        tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False))
    assert len(out["acc_matrix"]) == 5 and 0.0 <= out["acc"] <= 1.0
