"""Checkpoints across devices: a GPU run's checkpoint loads without a GPU, a restore puts the model and the
optimizer's state on the rebuilt strategy's device, and the CUDA random state is saved and restored.

No test needs a GPU: a CUDA checkpoint is written by tagging the saved storages ``cuda:0``, and the CUDA
generator calls are replaced where CUDA must seem present. The ``meta`` device stands for a second device
on a CPU-only machine (a restore must move every tensor there); CUDA joins the devices where torch has it.
"""

import warnings

import pytest
import torch
import torch.serialization

from avalanche_ext import checkpoint as ck
from avalanche_ext.checkpoint.pickling import dumps, loads

from tiny_streams import tiny_naive, two_class_stream

DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        blob = dumps({"weights": torch.arange(3.0)}, {})
    loaded = loads(blob, {})["weights"]
    assert loaded.device == torch.device("cpu") and loaded.tolist() == [0.0, 1.0, 2.0]


def trained_strategy():
    torch.manual_seed(0)
    strategy = tiny_naive([], train_mb_size=10)
    strategy.optimizer = torch.optim.SGD(strategy.model.parameters(), lr=0.05, momentum=0.9)
    strategy.train(two_class_stream(n_exp=1, per_class=10).train_stream[0])
    return strategy


@pytest.mark.parametrize("device", DEVICES)
def test_a_restore_moves_the_model_and_the_optimizer_state_to_the_strategys_device(device):
    saved = trained_strategy()
    blob = ck.capture_state(saved)
    target = torch.device(device)

    fresh = tiny_naive([])
    fresh.device = target
    ck.restore_state(fresh, blob)
    assert fresh.device == target, "the rebuilt strategy keeps its own device"
    params = list(fresh.model.parameters())
    assert params and all(p.device.type == target.type for p in params)
    buffers = [s["momentum_buffer"] for s in fresh.optimizer.state.values()]
    assert len(buffers) == len(params) and all(b.device.type == target.type for b in buffers)
    opt_params = [p for group in fresh.optimizer.param_groups for p in group["params"]]
    assert all(a is b for a, b in zip(opt_params, params)), "the optimizer still updates the model's parameters"
    if device != "meta":
        for (name, restored), original in zip(fresh.model.state_dict().items(), saved.model.state_dict().values()):
            assert torch.equal(restored.cpu(), original), name


@pytest.fixture
def fake_cuda(monkeypatch):
    """Torch seems to have ``n`` CUDA devices in use, with generator states ``[b"state0", ...]``; returns what
    ``set_rng_state_all`` was given."""
    restored = []

    def setup(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [f"state{i}".encode() for i in range(n)])
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
        return restored

    return setup


def test_the_cuda_random_state_is_saved_once_cuda_is_in_use_and_restored(fake_cuda):
    fake_cuda(0)
    assert "cuda" not in ck.rng_state()
    restored = fake_cuda(2)
    state = ck.rng_state()
    assert state["cuda"] == [b"state0", b"state1"]
    expected = torch.rand(3)  # what the CPU generator gives right after the state was taken
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ck.set_rng_state(state)
    assert restored == [[b"state0", b"state1"]] and torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("here", [0, 1])
def test_the_cuda_random_state_of_another_machine_is_not_restored_and_a_warning_says_so(fake_cuda, here):
    state = {**ck.rng_state(), "cuda": [b"state0", b"state1"]}
    restored = fake_cuda(here)
    with pytest.warns(UserWarning, match=f"2 CUDA device\\(s\\) and torch sees {here} here"):
        ck.set_rng_state(state)
    assert restored == []
