"""Latent replay: frozen lower layers, a bounded balanced memory, injection at the latent layer."""

from __future__ import annotations

import json

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.training.pretrain import cache_dir, pretrain_features, pretrain_for_stream
from avalanche_ext.functional.memory import latent_memory_bytes, replay_memory_figures
from avalanche_ext.models.latent_split import LatentCut, LatentLayerError, split_model
from avalanche_ext.plugins.latent_replay import LatentReplayPlugin
from avalanche_ext.protocols import collect_memory_reports
from avalanche_ext.storage import LatentBuffer


@pytest.fixture(scope="module")
def stream():
    return build_benchmark("split_digits", "class", seed=0)


def make_strategy(stream, plugins, *, epochs=1, hidden=32, seed=0):
    torch.manual_seed(seed)
    model = build_network(stream.input_shape, stream.n_outputs, hidden=hidden)
    strategy = Naive(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=32, train_epochs=epochs, eval_mb_size=256, plugins=plugins,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    return model, strategy


class BatchProbe(SupervisedPlugin):
    """Records the new-input and output sizes of every training minibatch."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int, int]] = []

    def after_forward(self, strategy, *args, **kwargs):
        self.sizes.append((len(strategy.mb_x), len(strategy.mb_y), len(strategy.mb_output)))


def test_layers_below_frozen_after_first_experience_and_head_still_learns(stream):
    plugin = LatentReplayPlugin("features", mem_size=60, free_experiences=1)
    model, strategy = make_strategy(stream, [plugin])
    exps = list(stream.train_stream)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy.train(exps[0])
    after_first = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert any(not torch.equal(before[n], after_first[n]) for n in before if n.startswith("features"))
    for exp in exps[1:3]:
        strategy.train(exp)
    for n, p in model.named_parameters():
        if n.startswith("features"):
            assert torch.equal(p, after_first[n]), f"{n} changed after the first experience"
    assert not torch.equal(model.classifier.weight, after_first["classifier.weight"])
    assert sorted(plugin.lower_names) == sorted(n for n, _ in model.named_parameters() if n.startswith("features"))


def test_lower_lr_factor_scales_every_update(stream):
    """With factor f the layers below move by exactly f times the optimizer's step."""
    plugin = LatentReplayPlugin("features", mem_size=20, free_experiences=0, lower_lr_factor=0.25)
    model, strategy = make_strategy(stream, [plugin])
    strategy.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    class StepProbe(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.ratios = []

        def before_update(self, s, *a, **k):
            self.w = s.model.features[1].weight.detach().clone()
            self.g = s.model.features[1].weight.grad.detach().clone()

        def after_update(self, s, *a, **k):
            if len(self.ratios) < 3 and self.g.abs().sum() > 0:
                moved = self.w - s.model.features[1].weight.detach()
                self.ratios.append(float((moved * self.g).sum() / (0.1 * self.g * self.g).sum()))

    probe = StepProbe()
    strategy.plugins.append(probe)  # runs after the latent plugin's rescaling in after_update
    strategy.train(next(iter(stream.train_stream)))
    assert probe.ratios and all(r == pytest.approx(0.25, rel=1e-4) for r in probe.ratios)


def test_minibatches_mix_new_inputs_with_stored_latents(stream):
    plugin = LatentReplayPlugin("features", mem_size=40, replay_batch_size=16)
    probe = BatchProbe()
    _, strategy = make_strategy(stream, [plugin, probe])
    exps = list(stream.train_stream)
    strategy.train(exps[0])
    assert all(b == y == o for b, y, o in probe.sizes)  # nothing replayed yet
    probe.sizes.clear()
    strategy.train(exps[1])
    assert probe.sizes and all(y == b + 16 and o == b + 16 for b, y, o in probe.sizes)


def test_memory_never_exceeds_size_and_stays_class_balanced(stream):
    plugin = LatentReplayPlugin("features", mem_size=50, balance="class")
    _, strategy = make_strategy(stream, [plugin])
    for exp in stream.train_stream:
        strategy.train(exp)
        sizes = plugin.buffer.group_sizes()
        assert len(plugin.buffer) <= 50
        assert max(sizes.values()) - min(sizes.values()) <= 1
        assert set(sizes) == set(plugin.buffer.class_counts())
    assert len(plugin.buffer) == 50 and len(plugin.buffer.class_counts()) == 10
    assert plugin.buffer.z.shape[1:] == (32,)


def test_buffer_balances_by_experience_and_fills_from_small_groups():
    buf = LatentBuffer(100, balance="experience", seed=1)
    for e in range(7):
        n = 5 if e == 2 else 40  # a small experience leaves its share to the others
        buf.add(torch.randn(n, 3), torch.randint(10, (n,)), e)
        sizes = buf.group_sizes()
        assert len(buf) <= 100
        assert sum(sizes.values()) == min(100, 5 + 40 * e if e >= 2 else 40 * (e + 1))
        big = [v for g, v in sizes.items() if g != 2]
        assert max(big) - min(big) <= 1
        if e >= 2:
            assert sizes[2] == 5 or sizes[2] >= min(big)
    assert LatentBuffer.quotas({0: 3, 1: 50, 2: 50}, 60) == {0: 3, 1: 29, 2: 28}


def test_buffer_rejects_bad_arguments():
    with pytest.raises(ValueError):
        LatentBuffer(0)
    with pytest.raises(ValueError):
        LatentBuffer(10, balance="task")
    for kwargs in ({"mem_size": 0}, {"free_experiences": -1}, {"lower_lr_factor": 1.0}, {"replay_batch_size": 0}):
        with pytest.raises(ValueError):
            LatentReplayPlugin("features", **{"mem_size": 10, **kwargs})


def test_model_without_the_latent_layer_fails_before_any_update(stream):
    plugin = LatentReplayPlugin("backbone.layer4", mem_size=10)
    model, strategy = make_strategy(stream, [plugin])
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(LatentLayerError, match="no layer named 'backbone.layer4'.*features"):
        strategy.train(next(iter(stream.train_stream)))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_multihead_model_is_rejected(stream):
    task_stream = build_benchmark("split_digits", "task", seed=0)
    model = build_network(task_stream.input_shape, task_stream.n_outputs, hidden=16, multihead=True)
    with pytest.raises(LatentLayerError, match="single-head"):
        LatentReplayPlugin("features", mem_size=10).attach(model)


def test_recipe_reports_bad_layer_before_training(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    cfg = RunConfig(recipe="latent_replay", benchmark="split_digits", scenario="class", epochs=1,
                    overrides={"latent_layer": "nope"}, tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False)
    with pytest.raises(LatentLayerError, match="nope"):
        run(cfg)


def test_state_round_trip(stream, tmp_path):
    plugin = LatentReplayPlugin("features", mem_size=30, seed=3)
    model, strategy = make_strategy(stream, [plugin])
    exps = list(stream.train_stream)
    strategy.train(exps[0])
    strategy.train(exps[1])
    torch.save(plugin.state_dict(), tmp_path / "plugin.pt")
    state = torch.load(tmp_path / "plugin.pt")  # weights_only: tensors and plain values only
    clone = LatentReplayPlugin("features", mem_size=30)
    clone.load_state_dict(state)
    assert torch.equal(clone.buffer.z, plugin.buffer.z) and torch.equal(clone.buffer.y, plugin.buffer.y)
    assert clone.lower_names == plugin.lower_names and clone.cut.frozen
    za, ya = plugin.buffer.sample(7)
    zb, yb = clone.buffer.sample(7)
    assert torch.equal(za, zb) and torch.equal(ya, yb)
    # a restored plugin keeps freezing the same layers on a fresh strategy
    model2, strategy2 = make_strategy(stream, [clone], seed=1)
    frozen = {n: p.detach().clone() for n, p in model2.named_parameters() if n.startswith("features")}
    strategy2.train(exps[2])
    assert all(torch.equal(p, frozen[n]) for n, p in model2.named_parameters() if n in frozen)


def test_split_model_finds_the_part_below_any_named_layer():
    model = build_network((1, 8, 8), 10, hidden=16)
    params, modules = split_model(model, "features.2", torch.zeros(2, 1, 8, 8))
    assert params == ["features.1.weight", "features.1.bias"]
    assert modules == ["features.0", "features.1", "features.2"]


def test_latent_cut_appends_injected_rows_and_freezes_only_after_split():
    model = build_network((1, 8, 8), 10, hidden=16)
    cut = LatentCut("features.2")
    cut.attach(model)
    cut.inject(torch.ones(3, 16))
    out = model(torch.zeros(2, 1, 8, 8))
    assert out.shape == (5, 10)
    above = model.classifier(model.features[4](model.features[3](torch.ones(3, 16))))
    assert torch.allclose(out[2:], above)  # the injected rows enter above the cut
    cut.check_injected()  # consumed: nothing to report
    cut.inject(torch.ones(1, 16))
    with pytest.raises(LatentLayerError, match="not run"):
        cut.check_injected()
    with pytest.raises(RuntimeError, match="split"):
        cut.freeze_below(model)
    cut.split(model, torch.zeros(2, 1, 8, 8))
    cut.freeze_below(model)
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["features.1.weight", "features.1.bias"]
    with pytest.raises(ValueError, match="lower_lr_factor"):
        LatentCut("features", lower_lr_factor=1.0)


def test_memory_figures_count_latent_and_raw_bytes():
    figures = replay_memory_figures(1500, (400,), (1, 28, 28))
    assert figures["latent_bytes"] == 1500 * 400 * 4 == latent_memory_bytes(1500, (400,))
    assert figures["raw_bytes_float32"] == 1500 * 784 * 4
    assert figures["raw_bytes_uint8"] == 1500 * 784
    assert figures["samples"] == 1500 and figures["latent_dim"] == 400


def test_memory_report_is_known_after_measure_and_after_training(stream):
    plugin = LatentReplayPlugin("features.2", mem_size=40)
    assert plugin.memory_report() == {"samples": 40}
    model, strategy = make_strategy(stream, [plugin])
    plugin.measure(model, stream.input_shape)
    measured = plugin.memory_report()
    assert measured == replay_memory_figures(40, (32,), stream.input_shape)
    assert collect_memory_reports(strategy)["memory.latent_bytes"] == 40 * 32 * 4
    trained = LatentReplayPlugin("features.2", mem_size=40)
    _, strategy = make_strategy(stream, [trained])
    strategy.train(next(iter(stream.train_stream)))
    assert trained.memory_report() == measured


def test_recipe_runs_and_logs_memory(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    out = run(RunConfig(recipe="latent_replay", benchmark="split_digits", scenario="class", epochs=1,
                        tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False))
    assert len(out["acc_matrix"]) == 5 and 0.0 <= out["acc"] <= 1.0
    json.dumps(out)


def test_pretrain_is_cached_by_settings_and_refuses_the_stream_source(tmp_path, stream):
    model = build_network((1, 8, 8), 10, hidden=16)
    first = pretrain_features(model, "digits", epochs=1, cache=tmp_path, input_shape=(1, 8, 8))
    weights = {k: v.clone() for k, v in model.features.state_dict().items()}
    assert not first["cached"] and (tmp_path / f"pretrain-digits-{first['key']}.pt").is_file()
    other = build_network((1, 8, 8), 10, hidden=16)
    again = pretrain_features(other, "digits", epochs=1, cache=tmp_path, input_shape=(1, 8, 8))
    assert again["cached"] and again["key"] == first["key"]
    assert all(torch.equal(weights[k], v) for k, v in other.features.state_dict().items())
    changed = pretrain_features(build_network((1, 8, 8), 10, hidden=16), "digits", epochs=2, cache=tmp_path,
                                input_shape=(1, 8, 8))
    assert changed["key"] != first["key"]
    with pytest.raises(ValueError, match="stream's own data"):
        pretrain_for_stream(build_network((1, 8, 8), 10, hidden=16), stream, "digits", cache=tmp_path)
    with pytest.raises(ValueError, match="input shape|shape"):
        pretrain_features(build_network((1, 8, 8), 10, hidden=16), "digits", cache=tmp_path,
                          input_shape=(1, 28, 28))
    assert pretrain_for_stream(model, stream, "none") is None


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AVALANCHE_EXT_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir(tmp_path / "x") == tmp_path / "x"
