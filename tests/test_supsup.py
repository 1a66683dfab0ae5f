"""Supermasks in Superposition: the properties that define the method."""

from __future__ import annotations

import io
import math

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.functional.supsup import (
    binary_inference, binary_mask, exhaustive_inference, oneshot_inference, straight_through_mask,
)
from avalanche_ext.metrics import task_inference_metrics
from avalanche_ext.models import SupSupNet, TaskBatchNorm, UnsupportedLayerError, build_network, build_supsup_network
from avalanche_ext.plugins import IncompatibleModelError, SupSupPlugin
from device_state import DEVICES, continue_each, devices_of, naive_on, same_state, through_file

STREAM_TI = "TaskInference_Acc_Stream/eval_phase/test_stream"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests run many tiny matrix products: one thread is faster and does not crowd a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Recorder(SupervisedPlugin):
    """Keeps the eval outputs per experience and counts training iterations."""

    def __init__(self):
        super().__init__()
        self.outputs: dict[int, list[torch.Tensor]] = {}
        self.iterations = 0

    def before_eval(self, strategy, *args, **kwargs):
        self.outputs = {}

    def after_eval_forward(self, strategy, *args, **kwargs):
        e = strategy.experience.logging().current_experience
        self.outputs.setdefault(e, []).append(strategy.mb_output.detach().clone())

    def after_training_iteration(self, strategy, *args, **kwargs):
        self.iterations += 1


def make_strategy(net, plugin, *, epochs=2, lr=1e-2, optimizer=None, eval_mb_size=128, extra=()):
    opt = optimizer or torch.optim.Adam(net.parameters(), lr=lr)
    recorder = Recorder()
    strategy = Naive(model=net, optimizer=opt, criterion=nn.CrossEntropyLoss(), train_mb_size=32,
                     train_epochs=epochs, eval_mb_size=eval_mb_size, plugins=[plugin, recorder, *extra],
                     evaluator=EvaluationPlugin(*task_inference_metrics(), loggers=[]))
    return strategy, recorder


def mlp(stream, hidden=100, batchnorm=False):
    if not batchnorm:
        return build_network(stream.input_shape, stream.n_outputs, hidden=hidden)
    return nn.Sequential(nn.Flatten(), nn.Linear(stream.input_size, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, stream.n_outputs))


def cnn(stream):
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, stream.n_outputs))


@pytest.fixture(scope="module")
def split_task():
    return build_benchmark("split_digits", "task", n_experiences=5, seed=0)


@pytest.fixture(scope="module")
def permuted():
    return build_benchmark("permuted_digits", "domain", n_experiences=3, seed=0)


# ----- the defining property: learned tasks never change -------------------------------------
@pytest.mark.parametrize("arch,mask_mode", [("mlp", "threshold"), ("mlp_bn", "topk"), ("cnn_bn", "threshold")])
def test_task1_predictions_are_bit_identical_after_task2(split_task, arch, mask_mode):
    torch.manual_seed(0)
    spec = {"mlp": lambda: mlp(split_task), "mlp_bn": lambda: mlp(split_task, batchnorm=True),
            "cnn_bn": lambda: cnn(split_task)}[arch]()
    net = build_supsup_network(spec, mask_mode=mask_mode)
    # momentum and weight decay on purpose: they must not reach a frozen task
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    strategy, rec = make_strategy(net, SupSupPlugin("gg"), optimizer=opt)
    test = split_task.test_stream[:2]
    strategy.train(split_task.train_stream[0])
    strategy.eval(test)
    before = torch.cat(rec.outputs[0])
    scores_before = [m.scores.detach().clone() for m in net.masked_layers]
    strategy.train(split_task.train_stream[1])
    strategy.eval(test)
    after = torch.cat(rec.outputs[0])
    assert torch.equal(before, after)
    assert any(not torch.equal(a, m.scores) for a, m in zip(scores_before, net.masked_layers))  # task 2 trained
    assert net.num_masks == 2
    masks = [[m.frozen_mask(i) for m in net.masked_layers] for i in range(2)]
    assert any(not torch.equal(a, b) for a, b in zip(*masks))
    # a learned task is actually learned: well above chance on its own test set
    y0 = torch.tensor([int(test[0].dataset[i][1]) for i in range(len(test[0].dataset))])
    assert (after.argmax(1) == y0).float().mean() > 0.8


def test_only_the_live_scores_are_parameters(split_task):
    net = build_supsup_network(mlp(split_task))
    net.start_task()
    net.freeze_task()
    names = [n for n, _ in net.named_parameters()]
    assert names and all(n.endswith(".scores") for n in names)
    assert all(b.dtype == torch.uint8 for n, b in net.named_buffers() if ".mask_" in n)


# ----- task inference ------------------------------------------------------------------------
@pytest.mark.parametrize("inference", ["oneshot", "binary", "exhaustive"])
def test_inference_picks_the_right_mask_on_permuted_tasks(permuted, inference):
    torch.manual_seed(0)
    net = build_supsup_network(mlp(permuted, hidden=200), extra_outputs=90)
    plugin = SupSupPlugin("gns", task_ids="experiences", inference=inference, infer_per="batch")
    strategy, rec = make_strategy(net, plugin, epochs=3, eval_mb_size=64)
    for exp in permuted.train_stream:
        strategy.train(exp)
    metrics = strategy.eval(permuted.test_stream)
    assert metrics[STREAM_TI] >= 0.99  # (almost) every test batch goes to its own task's mask
    per_sample = SupSupPlugin("gns", task_ids="experiences", inference=inference, infer_per="sample")
    per_sample.load_state_dict(plugin.state_dict())
    strategy.plugins[strategy.plugins.index(plugin)] = per_sample
    assert strategy.eval(permuted.test_stream)[STREAM_TI] >= 0.85  # chance: 1/3


def test_the_default_inference_tries_every_mask_on_a_class_split_and_the_gradient_on_shared_classes(permuted):
    """On tasks with disjoint classes the one-shot gradient sends nearly every input to one mask
    (about 1/k of the samples to their own); ``auto`` switches to trying every mask there."""
    split = build_benchmark("split_digits", "class", n_experiences=5, seed=0)
    got = {}
    for inference in ("auto", "oneshot"):
        torch.manual_seed(0)
        plugin = SupSupPlugin("gns", task_ids="experiences", inference=inference)
        strategy, _ = make_strategy(build_supsup_network(mlp(split), extra_outputs=90), plugin, epochs=2)
        for exp in split.train_stream:
            strategy.train(exp)
        got[inference] = (plugin.resolved_inference, strategy.eval(split.test_stream)[STREAM_TI])
    assert got["auto"][0] == "exhaustive" and got["oneshot"][0] == "oneshot"
    assert got["oneshot"][1] < 0.3 and got["auto"][1] > got["oneshot"][1] + 0.15, got
    plugin = SupSupPlugin("gns", task_ids="experiences")
    strategy, _ = make_strategy(build_supsup_network(mlp(permuted), extra_outputs=90), plugin, epochs=1)
    for exp in permuted.train_stream[:2]:
        strategy.train(exp)
    assert plugin.resolved_inference == "oneshot"  # the permuted tasks share all ten classes
    restored = SupSupPlugin("gns", task_ids="experiences")
    restored.load_state_dict(plugin.state_dict())
    assert restored.mask_classes == plugin.mask_classes and restored.resolved_inference == "oneshot"


def test_oneshot_and_binary_find_the_mask_that_lowers_entropy():
    # logits = sum_i alpha_i * L_i: only L_2 is confident, so raising alpha_2 lowers the entropy most
    torch.manual_seed(0)
    flat = torch.zeros(8, 10)
    peaked = torch.zeros(8, 10)
    peaked[:, 3] = 12.0
    table = torch.stack([flat, flat + torch.randn(8, 10) * 0.1, peaked, flat, flat])

    def superpose(alphas):
        return torch.einsum("...k,kbc->bc", alphas, table) if alphas.dim() == 1 else \
            torch.einsum("bk,kbc->bc", alphas, table)

    for per_sample in (True, False):
        tasks, grad = oneshot_inference(superpose, 5, 8, per_sample)
        assert tasks.tolist() == [2] * 8
        assert binary_inference(superpose, 5, 8, per_sample).tolist() == [2] * 8
        assert exhaustive_inference(lambda i: table[i], 5, per_sample).tolist() == [2] * 8


# ----- GNu -------------------------------------------------------------------------------------
def test_gnu_allocates_exactly_one_mask_per_task(permuted):
    from avalanche.benchmarks import tensors_benchmark

    def tensors(exp):
        ds = exp.dataset
        return (torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([int(ds[i][1]) for i in range(len(ds))]))

    order = [0, 1, 2, 0, 1]  # three tasks, two of them come back
    train = [tensors(permuted.train_stream[i]) for i in order]
    test = [tensors(permuted.test_stream[i]) for i in order]
    bm = tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0] * len(order))
    torch.manual_seed(0)
    net = build_supsup_network(mlp(permuted, hidden=200), extra_outputs=90)
    plugin = SupSupPlugin("gnu")
    strategy, rec = make_strategy(net, plugin, epochs=4)
    for exp in bm.train_stream:
        strategy.train(exp)
    assert net.num_masks == 3
    assert plugin.exp_to_mask == {0: 0, 1: 1, 2: 2, 3: 0, 4: 1}
    assert strategy.eval(bm.test_stream)[STREAM_TI] > 0.9


# ----- state -----------------------------------------------------------------------------------
def test_state_round_trip(split_task):
    torch.manual_seed(0)
    net = build_supsup_network(mlp(split_task, batchnorm=True), seed=1)
    plugin = SupSupPlugin("gg")
    strategy, rec = make_strategy(net, plugin, epochs=1)
    for exp in split_task.train_stream[:2]:
        strategy.train(exp)
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "plugin": plugin.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)

    fresh = build_supsup_network(mlp(split_task, batchnorm=True), seed=2)  # different random weights until loaded
    fresh.load_state_dict(saved["model"])
    fresh_plugin = SupSupPlugin("gg")
    fresh_plugin.load_state_dict(saved["plugin"])
    assert fresh.num_masks == 2
    assert fresh_plugin.state_dict() == plugin.state_dict()
    net.eval(), fresh.eval()
    x = torch.stack([split_task.test_stream[1].dataset[i][0] for i in range(50)])
    for t in range(2):
        assert torch.equal(net(x, task=t), fresh(x, task=t))
    assert same_state(net.state_dict(), fresh.state_dict())
    # the restored pair keeps learning where it stopped
    strategy2, _ = make_strategy(fresh, fresh_plugin, epochs=1)
    strategy2.train(split_task.train_stream[2])
    assert fresh.num_masks == 3 and fresh_plugin.label_to_mask == {0: 0, 1: 1, 2: 2}
    with pytest.raises(ValueError, match="cannot be loaded"):
        SupSupPlugin("gns", task_ids="experiences").load_state_dict(saved["plugin"])


# ----- failing early -----------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [nn.LSTM(8, 8), nn.Embedding(10, 8), nn.LayerNorm(8), nn.Conv1d(1, 2, 3)])
def test_unsupported_layers_are_rejected_by_name(layer):
    with pytest.raises(UnsupportedLayerError, match=type(layer).__name__):
        build_supsup_network(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), layer))


def test_multihead_network_is_rejected(split_task):
    with pytest.raises(UnsupportedLayerError, match="multi-head"):
        build_supsup_network(build_network(split_task.input_shape, 2, multihead=True))


def test_plain_model_fails_before_any_update(split_task):
    net = build_network(split_task.input_shape, split_task.n_outputs, hidden=32)
    before = [p.detach().clone() for p in net.parameters()]
    strategy, rec = make_strategy(net, SupSupPlugin("gg"))
    with pytest.raises(IncompatibleModelError, match="build_supsup_network"):
        strategy.train(split_task.train_stream[0])
    assert rec.iterations == 0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("mode", ["gg", "gns"])
def test_missing_task_labels_fail_before_training(mode):
    stream = build_benchmark("split_digits", "class", n_experiences=5, seed=0)
    net = build_supsup_network(mlp(stream, hidden=32))
    strategy, rec = make_strategy(net, SupSupPlugin(mode, task_ids="labels"))
    with pytest.raises(ValueError, match="distinct task label .* without task labels use mode='gns'"):
        strategy.train(stream.train_stream[0])
    assert rec.iterations == 0 and net.num_masks == 0


def test_bad_hyper_parameters_raise():
    for kwargs in ({"mode": "gx"}, {"mode": "gg", "task_ids": "experiences"}, {"inference": "exact"},
                   {"infer_per": "epoch"}, {"gnu_threshold": 1.5}, {"gnu_probe": 0}):
        with pytest.raises(ValueError):
            SupSupPlugin(**kwargs)
    with pytest.raises(ValueError):
        build_supsup_network(nn.Sequential(nn.Linear(4, 2)), sparsity=1.0)
    with pytest.raises(ValueError):
        build_supsup_network(nn.Sequential(nn.Linear(4, 2)), mask_mode="random")


# ----- masks: binarisation, straight-through gradient ---------------------------------------
def test_topk_keeps_the_largest_scores_and_gradient_is_straight_through():
    scores = torch.randn(40, 25, requires_grad=True)
    mask = straight_through_mask(scores, "topk", sparsity=0.3)
    assert int(mask.sum()) == 1000 - 300
    kept = scores.detach().abs()[mask.bool()].min()
    dropped = scores.detach().abs()[~mask.bool()].max()
    assert kept >= dropped
    upstream = torch.randn(40, 25)
    (mask * upstream).sum().backward()
    assert torch.allclose(scores.grad, upstream * scores.detach().sign())
    s2 = torch.randn(10, requires_grad=True)
    m2 = straight_through_mask(s2, "threshold")
    assert torch.equal(m2.bool(), binary_mask(s2, "threshold")) and torch.equal(m2.bool(), s2.detach() >= 0)
    m2.sum().backward()
    assert torch.equal(s2.grad, torch.ones(10))


def test_bytes_per_task_and_batchnorm_are_per_task(split_task):
    net = build_supsup_network(cnn(split_task))
    report = net.memory_report()
    n_weights = 8 * 1 * 3 * 3 + 2 * 8 * 4 * 4
    assert report["mask_bytes_per_task"] == sum(math.ceil(n / 8) for n in (72, 256))
    assert report["float32_bytes_per_task_equivalent"] == 4 * n_weights
    bn = net.norm_layers
    assert len(bn) == 1 and not list(bn[0].parameters())  # non-affine
    net.start_task()
    net.freeze_task()
    stored = sum(v.numel() * v.element_size() for k, v in net.state_dict().items()
                 if ".mask_" in k or ".mean_" in k or ".var_" in k)
    assert stored == report["bytes_per_task"]  # what one learned task adds to the stored state
    net.start_task()
    assert bn[0].n_slots == 2


# ----- recipe ---------------------------------------------------------------------------------------
def test_recipe_task_il_has_zero_forgetting(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    uri = f"sqlite:///{tmp_path}/m.db"
    res = run(RunConfig(recipe="supsup", benchmark="split_digits", scenario="task", seed=0, epochs=2,
                        tracking_uri=uri, progress=False, threads=1))
    assert res["forgetting"] == 0.0
    assert res["acc"] > 0.9


def test_recipe_rejects_gg_without_task_labels(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    with pytest.raises(ValueError, match="mode=gg"):
        run(RunConfig(recipe="supsup", benchmark="split_digits", scenario="class", seed=0, epochs=1,
                      overrides={"mode": "gg"}, tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False))




# ----- drop-in: any module tree with its own forward ------------------------------------------------
class Residual(nn.Module):
    """A user-written network: functional activations, a skip connection, a module used twice."""

    def __init__(self, n_in=64, hidden=32, n_out=10):
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.block = nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden))
        self.act = nn.ReLU()
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        h = self.act(self.inp(x.flatten(1)))
        h = self.act(h + self.block(h))
        return self.head(self.act(h))


def test_avalanche_simple_mlp_converts_and_keeps_learned_tasks(split_task):
    from avalanche.models import SimpleMLP

    torch.manual_seed(0)
    user = SimpleMLP(num_classes=split_task.n_outputs, input_size=64, hidden_size=64, drop_rate=0.1)
    user_state = {k: v.clone() for k, v in user.state_dict().items()}
    net = build_supsup_network(user)
    assert [type(m).__name__ for m in net.masked_layers] == ["MaskedLinear", "MaskedLinear"]
    assert any(isinstance(m, nn.Dropout) for m in net.modules())  # parameter-free modules kept
    assert all(torch.equal(v, user.state_dict()[k]) for k, v in user_state.items())  # the user's model untouched
    strategy, rec = make_strategy(net, SupSupPlugin("gg"), epochs=2)
    test = split_task.test_stream[:2]
    strategy.train(split_task.train_stream[0])
    strategy.eval(test)
    before = torch.cat(rec.outputs[0])
    strategy.train(split_task.train_stream[1])
    strategy.eval(test)
    assert torch.equal(before, torch.cat(rec.outputs[0]))
    y0 = torch.tensor([int(test[0].dataset[i][1]) for i in range(len(test[0].dataset))])
    assert (before.argmax(1) == y0).float().mean() > 0.8


def test_features_of_an_avalanche_multi_head_mlp_take_a_supermask_head():
    from avalanche.models import MTSimpleMLP

    net = build_supsup_network(nn.Sequential(nn.Flatten(), MTSimpleMLP(64, 32).features, nn.Linear(32, 10)))
    net.start_task()
    assert [m.shape for m in net.masked_layers] == [(32, 64), (10, 32)]
    assert net(torch.randn(3, 1, 8, 8), task=0).shape == (3, 10)
    with pytest.raises(UnsupportedLayerError, match="the network \\(MTSimpleMLP\\) is multi-head"):
        build_supsup_network(MTSimpleMLP(64, 32))


def test_user_module_keeps_its_forward_with_masked_weights():
    torch.manual_seed(0)
    user = Residual()
    user.shared = user.act  # the same module under two names stays one module
    net = build_supsup_network(user)
    body = net.body
    assert type(body) is Residual and body.shared is body.act
    assert len(net.masked_layers) == 3 and len(net.norm_layers) == 1
    net.start_task()
    net.eval()
    x = torch.randn(5, 1, 8, 8)
    w = [m.effective_weight(0) for m in (body.inp, body.block[0], body.head)]
    bn = net.norm_layers[0]
    h = torch.relu(x.flatten(1) @ w[0].T)
    z = (h @ w[1].T - bn.mean_0) / torch.sqrt(bn.var_0 + bn.eps)
    expected = torch.relu(torch.relu(h + z)) @ w[2].T
    assert torch.allclose(net(x, task=0), expected, atol=1e-5)
    # the route is handed over for one pass only: a layer called on its own asks for one
    with pytest.raises(RuntimeError, match="without a task route"):
        body.inp(x.flatten(1))


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.fc(x) * self.scale


@pytest.mark.parametrize("model,where", [
    (lambda: nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.ReLU(), nn.LayerNorm(8))), "module '1.1' (LayerNorm)"),
    (lambda: nn.Sequential(nn.Linear(8, 8), Scaled()), "module '1' (Scaled)"),
    (lambda: nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten()), "module '0' (Conv2d"),
])
def test_unsupported_module_is_named_with_a_fix_and_never_called_a_layer(model, where):
    with pytest.raises(UnsupportedLayerError) as err:
        build_supsup_network(model())
    message = str(err.value)
    assert where in message
    assert "layer " + where.split("'")[1] not in message  # a module or container is not called a "layer"
    assert any(fix in message for fix in ("Replace it", "Hold them", "build that convolution"))



@pytest.mark.parametrize("device", DEVICES)
def test_state_through_a_file_continues_identically_on_the_strategy_device(device, split_task, tmp_path):
    torch.manual_seed(0)
    net, plugin = build_supsup_network(cnn(split_task)), SupSupPlugin("gg")
    first = naive_on(net, plugin, device, lr=1e-2)
    for exp in split_task.train_stream[:2]:
        first.train(exp)
    saved = through_file(net, plugin, tmp_path / "supsup.pt")
    fresh, fresh_plugin = build_supsup_network(cnn(split_task), seed=5).to(device), SupSupPlugin("gg")
    fresh.load_state_dict(saved["model"])  # loaded into a model already on the device: new masks land there
    fresh_plugin.load_state_dict(saved["plugin"])
    assert devices_of(fresh) == {torch.device(device).type}
    continue_each([(net, plugin), (fresh, fresh_plugin)], split_task.train_stream[2], device, lr=1e-2)
    assert fresh.num_masks == 3 and fresh_plugin.label_to_mask == plugin.label_to_mask == {0: 0, 1: 1, 2: 2}
    assert same_state(net.state_dict(), fresh.state_dict())
