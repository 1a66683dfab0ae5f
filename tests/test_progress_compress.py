"""Progress & Compress: phases, the compress loss, online EWC, the adaptors, constant size, state, errors."""

from __future__ import annotations

import copy
import math
import runpy
from pathlib import Path

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import PNN
from avalanche.models.dynamic_modules import avalanche_model_adaptation
from torch import nn

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.functional.online_ewc import OnlineEWC, empirical_fisher, ewc_penalty, normalize_fisher
from avalanche_ext.functional.progress_compress import compress_loss, distillation_kl
from avalanche_ext.models import build_network
from avalanche_ext.models.progress_compress import ProgressCompressNet
from avalanche_ext.templates import ProgressCompress
from avalanche_ext.templates import progress_compress as template_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task_stream():
    return build_benchmark("split_digits", "task")


@pytest.fixture(scope="module")
def domain_stream():
    return build_benchmark("split_digits", "domain")


def make_strategy(stream, *, hidden=32, plugins=(), **kw):
    net = ProgressCompressNet(build_network(stream.input_shape, stream.n_outputs, hidden=hidden,
                                            multihead=stream.multihead))
    settings = dict(progress_epochs=1, compress_epochs=1, ewc_lambda=10.0, gamma=0.5, train_mb_size=64,
                    eval_mb_size=256, evaluator=None, plugins=list(plugins))
    settings.update(kw)
    return ProgressCompress(model=net, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3), **settings)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class PhaseProbe(SupervisedPlugin):
    """Snapshots of both columns at the start of training and at the end of each phase."""

    def __init__(self):
        super().__init__()
        self.records: list[dict] = []

    def before_training_exp(self, strategy, *args, **kwargs):
        self.records.append({"event": "start", "kb": snapshot(strategy.model.kb),
                             "ac": snapshot(strategy.model.ac), "adaptors": snapshot(strategy.model.adaptors)})

    def after_training_epoch(self, strategy, *args, **kwargs):
        last = strategy.progress_epochs if strategy.phase == "progress" else strategy.compress_epochs
        if strategy.phase_epoch == last - 1:
            self.records.append({"event": f"end_{strategy.phase}", "kb": snapshot(strategy.model.kb),
                                 "ac": snapshot(strategy.model.ac), "adaptors": snapshot(strategy.model.adaptors)})

    def after_training_exp(self, strategy, *args, **kwargs):
        self.records.append({"event": "end", "kb": snapshot(strategy.model.kb),
                             "ac": snapshot(strategy.model.ac), "adaptors": snapshot(strategy.model.adaptors)})


# ------------------------------------------------------------------ the two phases
def test_kb_frozen_during_progress_and_trained_during_compress(task_stream):
    probe = PhaseProbe()
    strategy = make_strategy(task_stream, plugins=[probe], progress_epochs=2, compress_epochs=1)
    for exp in task_stream.train_stream[:2]:
        strategy.train(exp)
    events = [r["event"] for r in probe.records]
    assert events == ["start", "end_progress", "end_compress", "end"] * 2
    for i in (0, 4):
        start, progress, compress = probe.records[i], probe.records[i + 1], probe.records[i + 2]
        assert same(start["kb"], progress["kb"]), "the knowledge base changed during the progress phase"
        assert not same(start["ac"], progress["ac"]), "the active column did not learn during progress"
        assert not same(start["adaptors"], progress["adaptors"]), "the adaptors did not learn during progress"
        assert not same(progress["kb"], compress["kb"]), "the knowledge base did not learn during compress"
        assert same(progress["ac"], compress["ac"]), "the active column changed during compress"
    # phase lengths as configured, in the log and in the epoch counter
    log = strategy.phase_log
    assert [(r["phase"], r["epoch"]) for r in log] == [("progress", 0), ("progress", 1), ("compress", 0)] * 2
    assert strategy.train_epochs == 3
    assert all({"kl", "ewc"} <= r.keys() for r in log if r["phase"] == "compress")


def test_ac_reset_after_compress_adaptors_kept_or_reset(task_stream):
    for reset_adaptors in (False, True):
        probe = PhaseProbe()
        strategy = make_strategy(task_stream, plugins=[probe], reset_adaptors=reset_adaptors)
        strategy.train(task_stream.train_stream[0])
        _, _, compressed, end = probe.records
        for name, value in compressed["ac"].items():
            if value.is_floating_point():
                assert not torch.equal(value, end["ac"][name]), f"AC tensor {name} was not re-initialised"
        assert same(compressed["kb"], end["kb"]), "the reset touched the knowledge base"
        assert same(compressed["adaptors"], end["adaptors"]) is (not reset_adaptors)
        assert strategy.phase is None and strategy.tasks_seen == 1


def test_evaluation_uses_the_knowledge_base(task_stream):
    strategy = make_strategy(task_stream)
    strategy.train(task_stream.train_stream[0])
    net = strategy.model
    seen = []
    handle = net.kb.register_forward_hook(lambda m, i, o: seen.append("kb"))
    handle_ac = net.ac.register_forward_hook(lambda m, i, o: seen.append("ac"))
    strategy.eval(task_stream.test_stream[:1])
    handle.remove()
    handle_ac.remove()
    assert seen and set(seen) == {"kb"}


# ------------------------------------------------------------------ the adaptors (eq. 1)
def test_active_column_follows_eq1_by_hand():
    torch.manual_seed(0)
    net = ProgressCompressNet(build_network((1, 2, 3), 4, hidden=5, layers=2))
    x = torch.randn(7, 1, 2, 3)
    kb, ac = net.kb, net.ac
    relu = torch.relu
    flat = x.flatten(1)
    k1 = relu(kb.features[1](flat))
    k2 = relu(kb.features[3](k1))
    a2, a3 = net.adaptors["features__3"], net.adaptors["classifier"]
    h1 = relu(ac.features[1](flat))
    h2 = relu(ac.features[3](h1) + a2.alpha * a2.U(relu(a2.V(k1))))
    expected = ac.classifier(h2) + a3.alpha * a3.U(relu(a3.V(k2)))
    with net.use("ac"):
        got = net(x)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(net(x), kb(x))  # default output: the knowledge base
    # without adaptors the active column ignores the knowledge base
    alone = ProgressCompressNet(build_network((1, 2, 3), 4, hidden=5), lateral=())
    with alone.use("ac"):
        torch.testing.assert_close(alone(x), alone.ac(x))
    assert len(alone.adaptors) == 0


def test_cnn_column_adaptors_and_deepcopy_stay_wired():
    torch.manual_seed(0)
    net = ProgressCompressNet(build_network((1, 12, 12), 3, arch="cnn", hidden=16))
    assert sorted(net.adaptors) == ["classifier", "features__3", "features__7"]  # not the first conv
    x = torch.randn(5, 1, 12, 12)
    with net.use("ac"):
        y = net(x)
    assert y.shape == (5, 3) and torch.isfinite(y).all()
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.adaptors["features__3"].alpha.mul_(100.0)
    with net.use("ac"), twin.use("ac"):
        torch.testing.assert_close(net(x), y)  # the copy's hooks call the copy's adaptors
        assert not torch.allclose(twin(x), y)


def test_mixed_task_batch_matches_per_task_forward(task_stream):
    net = ProgressCompressNet(build_network(task_stream.input_shape, 2, hidden=16, multihead=True))
    for exp in task_stream.train_stream[:3]:
        avalanche_model_adaptation(net, exp)
    x = torch.randn(6, *task_stream.input_shape)
    t = torch.tensor([0, 2, 1, 0, 2, 1])
    for column in ("kb", "ac"):
        with net.use(column):
            out = net(x, t)
            for task in (0, 1, 2):
                torch.testing.assert_close(out[t == task], net(x[t == task], task))


# ------------------------------------------------------------------ online EWC
def test_fisher_accumulates_with_decay_and_is_normalised():
    f1 = {"w": torch.tensor([2.0, 4.0]), "b": torch.tensor([1.0])}
    f2 = {"w": torch.tensor([3.0, 0.0]), "b": torch.tensor([6.0]), "new": torch.tensor([1.5])}
    ewc = OnlineEWC(gamma=0.5, normalize="max")
    ewc.update_fisher(f1)
    torch.testing.assert_close(ewc.fisher["w"], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(ewc.fisher["b"], torch.tensor([0.25]))
    ewc.update_fisher(f2)
    torch.testing.assert_close(ewc.fisher["w"], 0.5 * torch.tensor([0.5, 1.0]) + torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(ewc.fisher["b"], 0.5 * torch.tensor([0.25]) + torch.tensor([1.0]))
    torch.testing.assert_close(ewc.fisher["new"], torch.tensor([0.25]))  # a new parameter starts from zero
    mean = normalize_fisher(f1, "mean")  # mean entry becomes 1: (2 + 4 + 1) / 3
    torch.testing.assert_close(mean["w"], torch.tensor([2.0, 4.0]) * 3 / 7)
    assert same(normalize_fisher(f1, "none"), f1)
    with pytest.raises(ValueError):
        OnlineEWC(gamma=1.5)
    with pytest.raises(ValueError):
        normalize_fisher(f1, "l2")


def test_empirical_fisher_is_the_mean_of_squared_per_sample_gradients():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    expected = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    for i in range(5):
        net.zero_grad()
        nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()
        for n, p in net.named_parameters():
            expected[n] += p.grad ** 2 / 5
    got = empirical_fisher(net, [(x[:2], y[:2]), (x[2:], y[2:])])
    for n in expected:
        torch.testing.assert_close(got[n], expected[n])
    capped = empirical_fisher(net, [(x, y)], max_samples=2)
    net.zero_grad()
    torch.testing.assert_close(capped["bias"], empirical_fisher(net, [(x[:2], y[:2])])["bias"])


def test_template_fisher_is_gamma_decayed_sum_of_normalised_task_fishers(task_stream, monkeypatch):
    task_fishers = []

    def recording(*args, **kwargs):
        f = empirical_fisher(*args, **kwargs)
        task_fishers.append({k: v.clone() for k, v in f.items()})
        return f

    monkeypatch.setattr(template_module, "empirical_fisher", recording)
    strategy = make_strategy(task_stream, gamma=0.3, normalize="max")
    for exp in task_stream.train_stream[:2]:
        strategy.train(exp)
    assert len(task_fishers) == 2
    n1, n2 = (normalize_fisher(f, "max") for f in task_fishers)
    assert max(float(v.max()) for v in n1.values()) == pytest.approx(1.0)
    for name, value in strategy.ewc.fisher.items():
        expected = n2[name] + (0.3 * n1[name] if name in n1 else 0)
        torch.testing.assert_close(value, expected)
    kb_now = dict(strategy.model.kb.named_parameters())
    assert all(torch.equal(strategy.ewc.anchor[n], kb_now[n]) for n in kb_now)  # theta* <- theta_KB


# ------------------------------------------------------------------ the compress loss
def test_compress_loss_by_hand_tiny_case():
    teacher, student = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]], requires_grad=True)
    # p = softmax(1, 0); log p - log q = (1, -1); KL = p0 - p1 = (e - 1) / (e + 1)
    assert float(distillation_kl(teacher, student).detach()) == pytest.approx((math.e - 1) / (math.e + 1), rel=1e-6)
    theta = nn.Parameter(torch.tensor([3.0, -1.0]))
    ewc = OnlineEWC(normalize="none")
    ewc.fisher = {"theta": torch.tensor([0.5, 2.0])}
    ewc.anchor = {"theta": torch.tensor([1.0, -1.0])}
    ewc.n_updates = 1
    # penalty = 1/2 * (0.5 * (3 - 1)^2 + 2 * 0^2) = 1
    loss, kl, penalty = compress_loss(teacher, student, [("theta", theta)], ewc, ewc_lambda=2.0)
    assert float(penalty.detach()) == pytest.approx(1.0)
    assert float(loss.detach()) == pytest.approx((math.e - 1) / (math.e + 1) + 2.0, rel=1e-6)
    loss.backward()
    torch.testing.assert_close(theta.grad, torch.tensor([2.0 * 0.5 * 2.0, 0.0]))  # lambda * F * (theta - theta*)
    assert float(ewc_penalty([("theta", theta)], {}, {})) == 0.0


class CompressProbe(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.checked = 0

    def before_backward(self, strategy, *args, **kwargs):
        if strategy.phase != "compress" or strategy.clock.train_exp_counter == 0:
            return
        p = torch.softmax(strategy._teacher, dim=-1)
        q = torch.softmax(strategy.mb_output.detach(), dim=-1)
        kl = (p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log())).sum(-1).mean()
        pen = 0.0
        for name, theta in strategy.model.kb.named_parameters():
            if name not in strategy.ewc.fisher:  # a head created after the last consolidation is free
                continue
            pen += float((strategy.ewc.fisher[name] * (theta.detach() - strategy.ewc.anchor[name]) ** 2).sum()) / 2
        self.max_penalty = max(getattr(self, "max_penalty", 0.0), pen)
        assert float(strategy.loss) == pytest.approx(float(kl) + strategy.ewc_lambda * pen, rel=1e-4, abs=1e-6)
        self.checked += 1


def test_compress_phase_loss_is_kl_plus_ewc_penalty(task_stream):
    probe = CompressProbe()
    strategy = make_strategy(task_stream, plugins=[probe], ewc_lambda=50.0)
    for exp in task_stream.train_stream[:2]:
        strategy.train(exp)
    assert probe.checked >= 3
    assert probe.max_penalty > 0  # the KB moved away from its anchor, so the penalty term was exercised


# ------------------------------------------------------------------ constant size vs PNN
def test_model_size_constant_while_pnn_grows(task_stream, domain_stream):
    # single head: exactly constant, through adaptation and training
    strategy = make_strategy(domain_stream)
    sizes = []
    for exp in domain_stream.train_stream[:3]:
        strategy.train(exp)
        sizes.append(strategy.model.n_parameters()["total"])
    assert len(set(sizes)) == 1
    # multi-head: only the new head grows (KB head + AC head + its narrow adaptor); PNN adds a column
    net = ProgressCompressNet(build_network(task_stream.input_shape, 2, hidden=64, multihead=True))
    pnn = PNN(num_layers=2, in_features=task_stream.input_size, hidden_features_per_column=64)
    ours, theirs = [], []
    for exp in task_stream.train_stream:
        avalanche_model_adaptation(net, exp)
        avalanche_model_adaptation(pnn, exp)
        ours.append(net.n_parameters())
        theirs.append(sum(p.numel() for p in pnn.parameters()))
    head = 64 * 2 + 2  # one Linear(64, 2) head
    head_adaptor = (64 * 2 + 2) + 2 * 2 + 2  # V: 64 -> 2, U: 2 -> 2, alpha: 2
    growth = [b["total"] - a["total"] for a, b in zip(ours, ours[1:])]
    assert growth == [2 * head + head_adaptor] * 4
    pnn_growth = [b - a for a, b in zip(theirs, theirs[1:])]
    assert all(g > 64 * task_stream.input_size for g in pnn_growth)  # at least a new first layer per task
    assert all(p > 10 * o for p, o in zip(pnn_growth, growth))


# ------------------------------------------------------------------ state
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_state_round_trip_through_torch_load_continues_identically_on_the_device(domain_stream, task_stream,
                                                                                  tmp_path, device):
    for stream in (domain_stream, task_stream):
        torch.manual_seed(1)
        original = make_strategy(stream, gamma=0.7, hidden=16, device=device)
        for exp in stream.train_stream[:2]:
            original.train(exp)
        path = tmp_path / "pnc.pt"
        torch.save(original.state_dict(), path)
        torch.manual_seed(123)
        # a fresh strategy, never adapted: loading creates the saved heads and their adaptors
        restored = make_strategy(stream, gamma=0.2, progress_epochs=3, ewc_lambda=1.0, hidden=16, device=device)
        restored.load_state_dict(torch.load(path, map_location="cpu"))  # torch's weights_only default
        restored.model.to(device)
        assert same(snapshot(restored.model), snapshot(original.model))
        assert restored.gamma == 0.7 and restored.ewc_lambda == 10.0 and restored.train_epochs == 2
        assert restored.tasks_seen == 2 and restored.phase_log == original.phase_log
        assert same(restored.ewc.fisher, {k: v.cpu() for k, v in original.ewc.fisher.items()})
        for strategy in (original, restored):
            torch.manual_seed(7)
            strategy.train(stream.train_stream[2])
        assert same(snapshot(restored.model), snapshot(original.model))
        assert same(restored.ewc.fisher, original.ewc.fisher) and same(restored.ewc.anchor, original.ewc.anchor)
        assert all(v.device.type == torch.device(device).type for v in restored.ewc.anchor.values())
        with pytest.raises(ValueError):
            OnlineEWC().load_state_dict({**original.ewc.state_dict(), "gamma": 2.0})


def test_a_fresh_net_loads_a_trained_nets_state_and_predicts_the_same(task_stream, tmp_path):
    torch.manual_seed(0)
    net = ProgressCompressNet(build_network(task_stream.input_shape, 2, hidden=16, multihead=True))
    for exp in task_stream.train_stream[:3]:
        avalanche_model_adaptation(net, exp)
    with torch.no_grad():  # make the heads differ from any fresh initialisation
        for p in net.parameters():
            p.add_(0.1)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    fresh = ProgressCompressNet(build_network(task_stream.input_shape, 2, hidden=16, multihead=True))
    fresh.load_state_dict(torch.load(tmp_path / "net.pt"))
    assert same(snapshot(fresh), snapshot(net))
    assert sorted(fresh.adaptors) == sorted(net.adaptors)
    x = torch.randn(5, *task_stream.input_shape)
    for t in range(3):
        for column in ("kb", "ac"):
            with net.use(column), fresh.use(column):
                assert torch.equal(fresh(x, t), net(x, t))


# ------------------------------------------------------------------ bad configurations
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"progress_epochs": 0}, ValueError),
        ({"compress_epochs": 0}, ValueError),
        ({"ewc_lambda": -1.0}, ValueError),
        ({"gamma": 1.5}, ValueError),
        ({"normalize": "l2"}, ValueError),
        ({"fisher_samples": 0}, ValueError),
        ({"train_epochs": 3}, ValueError),
    ],
)
def test_bad_template_settings_fail_in_the_constructor(domain_stream, kwargs, error):
    with pytest.raises(error):
        make_strategy(domain_stream, **kwargs)


def test_bad_models_fail_before_training(domain_stream):
    column = build_network(domain_stream.input_shape, 2, hidden=8)
    with pytest.raises(TypeError, match="ProgressCompressNet"):
        ProgressCompress(model=column, optimizer=torch.optim.SGD(column.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="adaptor_width"):
        ProgressCompressNet(column, adaptor_width=0)
    with pytest.raises(ValueError, match="lateral"):
        ProgressCompressNet(column, lateral="everything")
    with pytest.raises(ValueError, match="unknown module"):
        ProgressCompressNet(column, lateral=["features.99"])
    with pytest.raises(ValueError, match="no Linear/Conv2d"):
        ProgressCompressNet(column, lateral=["features.0"])

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) * self.scale

    with pytest.raises(ValueError, match="reset_parameters"):
        ProgressCompressNet(Scaled())


def test_recipe_rejects_bad_settings_before_training(domain_stream):
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.registry import get_recipe

    recipe = get_recipe("progress_compress")
    for overrides, match in (({"compress_epochs": 0}, "compress_epochs"), ({"gamma": -0.1}, "gamma"),
                             ({"lateral": "features.42"}, "unknown module"), ({"adaptor_width": -1}, "adaptor_width")):
        ctx = RecipeContext(domain_stream, recipe.resolve("split_digits", overrides), evaluator=None)
        with pytest.raises(ValueError, match=match):
            recipe.build(ctx)


# ------------------------------------------------------------------ recipe, metrics, MLflow
def test_recipe_logs_phases_to_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    from avalanche_ext.runner import RunConfig, run

    uri = f"sqlite:///{tmp_path}/m.db"
    cfg = RunConfig(recipe="progress_compress", benchmark="split_digits", scenario="task", n_experiences=2,
                    epochs=2, overrides={"compress_epochs": 1, "hidden": 16}, tracking_uri=uri, progress=False)
    result = run(cfg)
    assert len(result["acc_matrix"]) == 2
    client = MlflowClient(tracking_uri=uri)
    data = client.get_run(result["mlflow_run_id"]).data
    for name in ("PnC_Loss_Epoch/progress_phase/train_stream", "PnC_Loss_Epoch/compress_phase/train_stream",
                 "PnC_KL_Epoch/compress_phase/train_stream", "PnC_EWC_Epoch/compress_phase/train_stream"):
        assert name in data.metrics, name
    progress = client.get_metric_history(result["mlflow_run_id"], "PnC_Loss_Epoch/progress_phase/train_stream")
    assert len(progress) == 2 * 2  # 2 progress epochs x 2 experiences
    epochs = client.get_metric_history(result["mlflow_run_id"], "PnC_Epochs/compress_phase/train_stream")
    assert [m.value for m in epochs] == [1.0, 1.0]


def test_docs_example_runs():
    runpy.run_path(str(ROOT / "docs" / "examples" / "progress_compress.py"), run_name="__main__")
