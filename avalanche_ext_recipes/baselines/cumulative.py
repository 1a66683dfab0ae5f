"""Cumulative: retrain on all data seen so far at every experience."""

from avalanche.training import Cumulative

from avalanche_ext.registry import register


@register(
    name="cumulative",
    family="baseline",
    paper="Cumulative retraining; an upper bound for incremental training (Lomonaco & Maltoni, CORe50, CoRL 2017, arXiv:1705.03550)",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    summary="at each experience, train on the union of all experiences so far",
)
def build(ctx):
    model = ctx.model()
    return Cumulative(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
