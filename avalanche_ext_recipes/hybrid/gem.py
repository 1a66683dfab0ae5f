"""Gradient Episodic Memory: project the gradient so no past task's memory loss increases (needs quadprog)."""

from avalanche.training import GEM

from avalanche_ext.registry import register


@register(
    name="gem",
    family="hybrid",
    paper="Lopez-Paz & Ranzato, Gradient Episodic Memory for Continual Learning, NeurIPS 2017, arXiv:1706.08840",
    scenarios=("class", "task", "domain"),
    grid={"lr": (1e-3, 3e-3), "memory_strength": (0.5, 1.0)},
    hparams={"patterns_per_exp": 100, "memory_strength": 0.5},
    per_benchmark={"split_mnist5k": {"patterns_per_exp": 256}, "permuted_mnist5k": {"patterns_per_exp": 256},
                   "split_fmnist": {"patterns_per_exp": 256}},
    summary="quadratic-program projection of the gradient against per-task memories",
    amp=False,  # no mixed precision: GEM's plugin runs a backward pass per stored task and projects the gradient
)
def build(ctx):
    model = ctx.model()
    return GEM(model=model, optimizer=ctx.optimizer(model), patterns_per_exp=ctx.hp.patterns_per_exp,
               memory_strength=ctx.hp.memory_strength, **ctx.strategy_args())
