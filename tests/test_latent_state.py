"""Latent replay, GNR, CWR* and ExStream: saved state loads with plain torch.load onto the strategy's device,
and training continues exactly as without the interruption."""

from __future__ import annotations

import pickle

import pytest
import torch
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext import checkpoint as ck
from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.plugins import CWRStarHead, ExStreamPlugin, GenerativeLatentReplayPlugin
from avalanche_ext.plugins.latent_replay import LatentReplayPlugin
from avalanche_ext.storage import ExStreamBuffer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAST_VAE = dict(vae_epochs=1, vae_hidden=32, code_dim=8, replay_per_class=20)


@pytest.fixture(scope="module")
def stream():
    return build_benchmark("split_digits", "class", seed=0, n_experiences=3)


def latent_replay(model):
    return [LatentReplayPlugin("features", mem_size=40, seed=3)]


def gnr(model):
    return [CWRStarHead("classifier", old_rows="consolidated"),
            GenerativeLatentReplayPlugin("features", negative=True, seed=5, **FAST_VAE)]


def exstream_latent(model):
    for p in model.features.parameters():
        p.requires_grad_(False)
    buffer = ExStreamBuffer(30, per_class=5, feature_extractor=model.features)
    return [ExStreamPlugin(buffer, batch_size_mem=8, seed=2)]


METHODS = {"latent_replay": latent_replay, "gnr": gnr, "exstream_latent": exstream_latent}


def make(stream, method, device, seed):
    torch.manual_seed(seed)
    model = build_network(stream.input_shape, stream.n_outputs, hidden=32)
    plugins = METHODS[method](model)
    params = [p for p in model.parameters() if p.requires_grad]
    # plain SGD: no optimizer state to carry over, so what the model does after a restore is the plugins' doing
    strategy = Naive(model=model, optimizer=torch.optim.SGD(params, lr=0.05), criterion=torch.nn.CrossEntropyLoss(),
                     train_mb_size=32, train_epochs=1, eval_mb_size=256, plugins=plugins, device=device,
                     evaluator=EvaluationPlugin(loggers=[]))
    return strategy, plugins


def tensors_on(obj, device_type):
    """Every tensor in a nested state is on ``device_type`` (raises with the first that is not)."""
    if isinstance(obj, torch.Tensor):
        return obj.device.type == device_type
    if isinstance(obj, dict):
        return all(tensors_on(v, device_type) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(tensors_on(v, device_type) for v in obj)
    return True


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_state_round_trips_through_plain_torch_load_and_training_continues_identically(stream, method, device,
                                                                                        tmp_path):
    exps = list(stream.train_stream)
    stopped, plugins = make(stream, method, device, seed=0)
    stopped.train(exps[0])
    stopped.train(exps[1])
    torch.save({"model": stopped.model.state_dict(), "plugins": [p.state_dict() for p in plugins],
                "rng": torch.get_rng_state()}, tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt")  # weights_only: tensors and plain Python values only

    resumed, fresh = make(stream, method, device, seed=1)  # other initial weights: all must come from the state
    resumed.model.load_state_dict(saved["model"])
    for plugin, state in zip(fresh, saved["plugins"]):
        plugin.load_state_dict(state)
    torch.set_rng_state(saved["rng"])
    resumed.train(exps[2])
    straight, _ = make(stream, method, device, seed=0)  # the same seed: the same first two experiences
    straight.train(exps[0])
    straight.train(exps[1])
    straight.train(exps[2])

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert a.device.type == b.device.type == device
        assert torch.equal(a, b), f"{method}: {name} differs after the restored run's third experience"
    gen = next((p for p in fresh if isinstance(p, GenerativeLatentReplayPlugin)), None)
    if gen is not None:  # restored on the CPU, moved to the strategy's device at its next use
        assert all(p.device.type == device for p in gen.vae.parameters())
        assert tensors_on(gen.state_dict()["generator"]["vae"], device)


def test_the_model_carries_no_hook_between_minibatches_and_pickles_as_a_plain_module(stream):
    strategy, (plugin,) = make(stream, "latent_replay", "cpu", seed=0)
    exps = list(stream.train_stream)
    strategy.train(exps[0])
    strategy.train(exps[1])  # replays latents: the injection hook was registered and removed in every minibatch
    assert plugin._n_replayed > 0
    hooked = [n for n, m in strategy.model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
    assert hooked == []
    copy = pickle.loads(pickle.dumps(strategy.model))
    assert not any(m._forward_hooks for m in copy.modules())


def test_a_checkpoint_restores_latent_replay_through_its_state_dict_into_the_rebuilt_plugin(stream):
    exps = list(stream.train_stream)
    saved, (plugin,) = make(stream, "latent_replay", "cpu", seed=0)
    saved.train(exps[0])
    saved.train(exps[1])
    blob = ck.capture_state(saved)
    rebuilt, (fresh,) = make(stream, "latent_replay", "cpu", seed=1)
    ck.restore_state(rebuilt, blob)
    assert rebuilt.plugins[0] is fresh and fresh is not plugin
    assert fresh.experiences_seen == 2 and torch.equal(fresh.buffer.z, plugin.buffer.z)
    assert fresh.lower_names == plugin.lower_names
    # a second capture after training on holds no hook either: the checkpoint's model is a plain module
    rebuilt.train(exps[2])
    assert not any(m._forward_hooks for m in rebuilt.model.modules())
