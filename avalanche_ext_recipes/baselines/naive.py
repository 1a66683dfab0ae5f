"""Naive fine-tuning: train on each experience in turn with no protection (the lower bound)."""

from avalanche.training import Naive

from avalanche_ext.registry import register


@register(
    name="naive",
    family="baseline",
    paper="Fine-tuning; the lower bound of every CL comparison (e.g. Hsu et al. 2018, arXiv:1810.12488)",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    summary="fine-tune on each experience in turn (lower bound)",
)
def build(ctx):
    model = ctx.model()
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
