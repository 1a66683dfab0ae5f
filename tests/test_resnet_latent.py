"""The reduced ResNet-18 under latent replay (cut inside the ResNet), GNR, generative latent replay,
ExStream and CWR*: one training step per experience on a 32x32 stream, through each recipe's build."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks import tensors_benchmark
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks.streams import Stream
from avalanche_ext.models.latent_split import LatentLayerError
from avalanche_ext.plugins import ExStreamPlugin, GenerativeLatentReplayPlugin
from avalanche_ext.plugins.latent_replay import LatentReplayPlugin
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe

N_PER_EXP = 16  # one mini-batch of 16: one training step per experience


def stream32() -> Stream:
    """Two class-incremental experiences of two classes, 3x32x32 random images."""
    g = torch.Generator().manual_seed(0)
    train, test = [], []
    for e in range(2):
        y = torch.tensor([2 * e, 2 * e + 1]).repeat(N_PER_EXP // 2)
        x = torch.rand(N_PER_EXP, 3, 32, 32, generator=g) + 0.1 * y[:, None, None, None]
        train.append((x, y))
        test.append((x[:4], y[:4]))
    bench = tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0, 0])
    return Stream(name="fake32", scenario="class", seed=0, benchmark=bench, input_shape=(3, 32, 32), n_outputs=4,
                  n_experiences=2, classes_per_exp=[[0, 1], [2, 3]])


@pytest.fixture(scope="module")
def stream():
    return stream32()


FAST = {"arch": "resnet18", "epochs": 1, "batch_size": N_PER_EXP, "lr": 0.01}
CASES = {
    "latent_replay": {"latent_layer": "features.layer3", "mem_size": 8},
    "latent_replay@features": {"mem_size": 8},
    "gnr": {"vae_epochs": 1, "vae_hidden": 16, "code_dim": 4},
    "gnr@layer4": {"latent_layer": "features.layer4", "vae_epochs": 1, "vae_hidden": 16, "code_dim": 4},
    "generative_latent_replay": {"vae_epochs": 1, "vae_hidden": 16, "code_dim": 4},
    "exstream": {"mem_size": 8},
    "exstream@latent": {"mem_size": 8, "space": "latent"},
    "cwr_star": {},
}


def build(stream, case, evaluator=None):
    recipe = get_recipe(case.split("@")[0])
    hp = recipe.resolve(None, {**FAST, **CASES[case]})
    return recipe.build(RecipeContext(stream, hp, evaluator=evaluator))


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_training_step_per_experience_on_32x32_images(stream, case):
    torch.manual_seed(0)
    strategy = build(stream, case)
    rows = []
    strategy.plugins.append(_Rows(rows))
    snapshot = [{n: p.detach().clone() for n, p in strategy.model.named_parameters()}]
    for exp in stream.train_stream:
        strategy.train(exp)
        snapshot.append({n: p.detach().clone() for n, p in strategy.model.named_parameters()})
    assert len(rows) == 2, "one mini-batch per experience"
    moved = [n for n, p in snapshot[2].items() if not torch.equal(p, snapshot[1][n])]  # in the second experience
    assert any(n.startswith("classifier") for n in moved), "the head learns"
    replay = next((p for p in strategy.plugins if isinstance(p, (LatentReplayPlugin, GenerativeLatentReplayPlugin))),
                  None)
    if replay is not None:
        # the second experience replays latents at the cut: more output rows than new inputs
        assert rows[1][1] > rows[1][0] == N_PER_EXP
        assert replay.cut.frozen
        below = set(replay.lower_names)
        assert below and all(n.startswith("features.") for n in below)
        bn_below = [m for n, m in strategy.model.named_modules()
                    if n in set(replay.cut.lower_modules) and isinstance(m, torch.nn.BatchNorm2d)]
        assert bn_below, "the cut lies inside the ResNet, below its batch norm layers"
    if replay is not None:
        assert not set(moved) & below, "the layers below the cut are frozen after the first experience"
    if case == "latent_replay":  # cut after the third stage: the fourth stage still trains
        assert any(n.startswith("features.layer4") for n in moved)
        assert any(n.startswith("features.layer3") for n in below) and replay.latent_shape == (80, 8, 8)
    if case == "exstream@latent":
        exs = next(p for p in strategy.plugins if isinstance(p, ExStreamPlugin))
        assert len(exs.buffer) > 0 and not strategy.model.features.training
    out = strategy.model.eval()(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


class _Rows(SupervisedPlugin):
    """Records (new inputs, output rows) of every training mini-batch."""

    def __init__(self, rows):
        super().__init__()
        self.rows = rows

    def after_forward(self, strategy, *args, **kwargs):
        self.rows.append((len(strategy.mb_x), len(strategy.mb_output)))


def test_the_frozen_resnet_below_the_cut_keeps_its_batch_norm_statistics(stream):
    torch.manual_seed(0)
    strategy = build(stream, "latent_replay")
    exps = list(stream.train_stream)
    strategy.train(exps[0])
    stats = {n: b.clone() for n, b in strategy.model.named_buffers() if n.startswith(("features.stem", "features.layer1",
                                                                                        "features.layer2",
                                                                                        "features.layer3"))}
    strategy.train(exps[1])
    assert stats and all(torch.equal(b, stats[n]) for n, b in strategy.model.named_buffers() if n in stats)


def test_exstream_latent_keeps_the_frozen_resnet_statistics(stream):
    torch.manual_seed(0)
    strategy = build(stream, "exstream@latent")
    stats = {n: b.clone() for n, b in strategy.model.features.named_buffers()}
    for exp in stream.train_stream:
        strategy.train(exp)
    assert all(torch.equal(b, stats[n]) for n, b in strategy.model.features.named_buffers())


@pytest.mark.parametrize("recipe", ["latent_replay", "gnr"])
def test_a_latent_layer_the_resnet_lacks_is_refused_at_build_with_its_stage_names(stream, recipe):
    hp = get_recipe(recipe).resolve(None, {**FAST, "latent_layer": "features.conv5"})  # another network's name
    with pytest.raises(LatentLayerError, match=r"latent_layer= one of: features, classifier, features\.stem, "
                                               r"features\.layer1, features\.layer2, features\.layer3"):
        get_recipe(recipe).build(RecipeContext(stream, hp, evaluator=None))


@pytest.mark.parametrize("case", ["latent_replay", "gnr", "exstream", "cwr_star"])
def test_the_recipes_keep_the_callers_evaluator_and_add_no_default_logger(stream, case):
    evaluator = EvaluationPlugin(loggers=[])
    assert build(stream, case, evaluator=evaluator).evaluator is evaluator
    assert build(stream, case).evaluator.loggers == []  # none given: Avalanche's silent evaluator, no printing
