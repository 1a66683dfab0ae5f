"""Piggyback: the first experience trains the backbone; every later task learns a binary weight mask over it."""

from avalanche.training import Naive

from avalanche_ext.models.piggyback import PiggybackNet
from avalanche_ext.plugins.piggyback import PiggybackPlugin
from avalanche_ext.registry import register


@register(
    name="piggyback",
    family="architectural",
    paper="Mallya, Davis, Lazebnik, Piggyback: Adapting a Single Network to Multiple Tasks by Learning to Mask "
          "Weights, ECCV 2018, arXiv:1801.06519",
    scenarios=("task",),
    grid={"lr": (3e-4, 1e-3), "mask_scale": (1e-2, 2e-2)},
    hparams={"threshold": 5e-3, "mask_scale": 1e-2},
    summary="binary weight masks per task (straight-through) over a backbone frozen after the first experience",
)
def build(ctx):
    hp = ctx.hp
    net = ctx.model(multihead=False)
    model = PiggybackNet(net.features, feature_size=net.classifier.in_features, n_outputs=ctx.stream.n_outputs,
                         threshold=hp.threshold, mask_scale=hp.mask_scale, copy=False)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[PiggybackPlugin()]))
