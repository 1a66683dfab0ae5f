"""Mixed precision: AutocastPlugin's mechanics on the CPU (bfloat16, and float16 with its loss scaler), the recipes'
``amp`` declarations, and the refusals of ``--amp``."""

import copy

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive

from avalanche_ext.benchmarks import get_spec
from avalanche_ext.cli import main
from avalanche_ext.plugins import AutocastPlugin, IncompatibleModelError, IncompatibleTemplateError
from avalanche_ext.registry import all_recipes, get_recipe
from avalanche_ext.runner import RunConfig, default_scenario, run
from avalanche_ext.taxonomy import TaxonomyConfig, plan

from tiny_streams import tiny_naive, two_class_stream


class Probe(SupervisedPlugin):
    """Records, per training iteration, what a plugin placed before AutocastPlugin sees."""

    def __init__(self, poison_iteration=None):
        super().__init__()
        self.poison_iteration = poison_iteration
        self.seen = []
        self.eval_dtypes = []

    def after_forward(self, strategy, **kwargs):
        self.seen.append({"output": strategy.mb_output.dtype, "autocast_forward": torch.is_autocast_enabled("cpu")})

    def before_backward(self, strategy, **kwargs):
        self.seen[-1]["autocast_before_backward"] = torch.is_autocast_enabled("cpu")
        self.seen[-1]["loss"] = float(strategy.loss.detach())
        if len(self.seen) - 1 == self.poison_iteration:
            strategy.loss = strategy.loss * float("inf")

    def after_backward(self, strategy, **kwargs):
        grads = [p.grad for p in strategy.model.parameters() if p.grad is not None]
        self.seen[-1]["grad_norm"] = float(torch.norm(torch.stack([g.norm() for g in grads])))
        self.seen[-1]["loss_after_backward"] = float(strategy.loss.detach())
        self.seen[-1]["autocast_backward"] = torch.is_autocast_enabled("cpu")

    def before_update(self, strategy, **kwargs):
        self.seen[-1]["before"] = [p.detach().clone() for p in strategy.model.parameters()]

    def after_update(self, strategy, **kwargs):
        self.seen[-1]["after"] = [p.detach().clone() for p in strategy.model.parameters()]

    def after_eval_forward(self, strategy, **kwargs):
        self.eval_dtypes.append(strategy.mb_output.dtype)


def train_once(plugins, seed=0):
    torch.manual_seed(seed)
    strategy = tiny_naive(plugins, train_mb_size=10)
    bm = two_class_stream(n_exp=1, per_class=20)
    strategy.train(bm.train_stream[0])
    return strategy, bm


def test_bf16_autocasts_the_forward_pass_and_loss_but_not_the_backward_pass_or_the_weights():
    probe, amp = Probe(), AutocastPlugin("bf16")
    strategy, bm = train_once([probe, amp])
    assert probe.seen, "no training iteration seen"
    for it in probe.seen:
        assert it["output"] == torch.bfloat16 and it["autocast_forward"] and it["autocast_before_backward"]
        assert not it["autocast_backward"], "the backward pass runs outside autocast"
        assert any(not torch.equal(a, b) for a, b in zip(it["before"], it["after"])), "every step updates"
    assert all(p.dtype == torch.float32 for p in strategy.model.parameters()), "the weights stay float32"
    assert not torch.is_autocast_enabled("cpu"), "nothing is left under autocast after training"
    assert "backward" not in vars(strategy) and "optimizer_step" not in vars(strategy), "the template is handed back"
    assert amp.scaler is None, "bfloat16 needs no loss scaling"

    strategy.eval(bm.test_stream)
    assert probe.eval_dtypes and set(probe.eval_dtypes) == {torch.bfloat16}
    assert not torch.is_autocast_enabled("cpu")
    without = AutocastPlugin("bf16", in_eval=False)
    probe.eval_dtypes.clear()
    strategy.plugins[strategy.plugins.index(amp)] = without
    strategy.eval(bm.test_stream)
    assert set(probe.eval_dtypes) == {torch.float32}


def test_fp16_scales_the_loss_hands_unscaled_gradients_to_the_other_plugins_and_skips_a_step_that_overflows():
    reference = Probe()
    train_once([reference])
    probe, amp = Probe(poison_iteration=1), AutocastPlugin("fp16")
    train_once([probe, amp])
    first, poisoned, third = probe.seen[0], probe.seen[1], probe.seen[2]
    # The loss the other plugins (and the loss metrics) see is never the scaled one ...
    assert first["loss_after_backward"] == pytest.approx(first["loss"])
    assert first["loss"] == pytest.approx(reference.seen[0]["loss"], rel=1e-2)
    # ... and neither are the gradients: about those of float32 training, not 65536 times larger.
    assert first["grad_norm"] == pytest.approx(reference.seen[0]["grad_norm"], rel=2e-2)
    assert any(not torch.equal(a, b) for a, b in zip(first["before"], first["after"]))
    # The step whose gradients overflow is skipped and the scale halves; training goes on.
    assert all(torch.equal(a, b) for a, b in zip(poisoned["before"], poisoned["after"]))
    assert any(not torch.equal(a, b) for a, b in zip(third["before"], third["after"]))
    assert amp.scaler.get_scale() == 65536.0 / 2


class Failing(SupervisedPlugin):
    """Raises inside the autocast region: in the training step (after the forward pass) or in evaluation."""

    def __init__(self, where):
        super().__init__()
        self.where = where

    def after_forward(self, strategy, **kwargs):
        if self.where == "train":
            raise RuntimeError("a step that fails")

    def after_eval_forward(self, strategy, **kwargs):
        if self.where == "eval":
            raise RuntimeError("an evaluation that fails")


@pytest.mark.parametrize("where", ["train", "eval"])
def test_a_step_that_raises_leaves_no_autocast_region_open_and_the_strategy_trains_again(where):
    plugin = AutocastPlugin("bf16")
    failing = Failing(where)
    strategy = tiny_naive([plugin, failing], train_mb_size=10)
    bm = two_class_stream(n_exp=1, per_class=20)
    with pytest.raises(RuntimeError, match="fails"):
        strategy.train(bm.train_stream[0])
        strategy.eval(bm.test_stream)
    assert not torch.is_autocast_enabled("cpu")
    failing.where = None
    strategy.train(bm.train_stream[0])
    strategy.eval(bm.test_stream)
    assert not torch.is_autocast_enabled("cpu")
    assert "training_epoch" not in vars(strategy) and "eval_epoch" not in vars(strategy)


def test_the_loss_scale_round_trips_through_the_state_dict():
    amp = AutocastPlugin("fp16")
    train_once([Probe(poison_iteration=0), amp])
    state = copy.deepcopy(amp.state_dict())
    assert state["dtype"] == "float16" and state["scaler"]["scale"] == 32768.0
    fresh = AutocastPlugin("bf16")
    fresh.load_state_dict(state)
    assert fresh.dtype == torch.float16 and fresh.scaler is None
    train_once([fresh])
    assert fresh.scaler.get_scale() == 32768.0, "the saved scale is applied when the scaler is made"


def test_a_strategy_with_its_own_training_step_or_a_float32_multi_head_forward_is_refused_before_training():
    class OwnBackward(Naive):
        def backward(self):
            self.loss.backward()

    model = torch.nn.Linear(6, 6)
    strategy = OwnBackward(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                           criterion=torch.nn.CrossEntropyLoss(), train_mb_size=8, plugins=[AutocastPlugin()])
    with pytest.raises(IncompatibleTemplateError, match="overrides backward"):
        strategy.train(two_class_stream(n_exp=1).train_stream[0])
    assert torch.equal(strategy.model.weight, model.weight)

    from avalanche.models import MultiHeadClassifier

    heads = MultiHeadClassifier(6, 2)
    strategy = tiny_naive([AutocastPlugin()])
    strategy.model = heads
    with pytest.raises(IncompatibleModelError, match="MultiTaskModule.forward"):
        strategy.train(two_class_stream(n_exp=1).train_stream[0])
    with pytest.raises(ValueError, match="dtype must be 'bf16' or 'fp16'"):
        AutocastPlugin("fp32")


def test_recipes_whose_strategy_runs_its_own_passes_declare_amp_false():
    refused = {r.name for r in all_recipes() if not r.amp}
    assert {"gem", "agem", "mir", "progress_compress", "hnet", "icarl"} <= refused
    assert {"naive", "replay", "ewc", "lwf", "si", "cwr_star"}.isdisjoint(refused)


@pytest.mark.parametrize("argv, message", [
    (["run", "gem", "--amp", "bf16"], "recipe 'gem' does not train under mixed precision"),
    (["run", "naive", "--amp", "fp16", "--device", "cpu"], "--amp fp16 runs on cuda, and this run's device is cpu"),
    (["sweep", "mir", "--grid", "lr=0.1,0.01", "--amp", "bf16"], "recipe 'mir' does not train under mixed precision"),
], ids=["recipe", "fp16 on cpu", "sweep"])
def test_amp_is_refused_before_anything_starts(argv, message, capsys, tmp_path):
    assert main(argv + ["--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()


def test_a_taxonomy_under_amp_skips_the_recipes_that_refuse_it_and_says_why():
    jobs, skipped = plan(TaxonomyConfig(benchmark="split_digits", recipes=["naive", "gem"], scenarios=["class"],
                                        amp="bf16"))
    assert [j.recipe for j in jobs] == ["naive"] and jobs[0].amp == "bf16"
    assert skipped == [{"recipe": "gem", "scenario": "class",
                        "reason": "gem does not train under mixed precision (--amp)"}]


AMP_RECIPES = [r for r in all_recipes() if r.amp]


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.mark.parametrize("recipe", AMP_RECIPES, ids=lambda r: r.name)
def test_every_recipe_that_allows_amp_trains_under_bf16_on_the_cpu_about_as_well_as_in_float32(recipe, shared_uri):
    scenario = default_scenario(recipe, get_spec("split_digits"))
    fast = {k: v for k, v in {"vae_epochs": 1, "gen_iterations": 50}.items() if k in recipe.defaults("split_digits")}

    def one(amp):
        return run(RunConfig(recipe.name, benchmark="split_digits", scenario=scenario, n_experiences=2, epochs=1,
                             device="cpu", amp=amp, tracking_uri=shared_uri, progress=False, overrides=fast))

    mixed, full = one("bf16"), one(None)
    assert mixed["device"] == "cpu"
    assert mixed["acc"] == pytest.approx(full["acc"], abs=0.05)
    assert get_recipe(recipe.name).amp
