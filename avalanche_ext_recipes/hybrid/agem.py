"""Averaged GEM: one projection against the average memory gradient."""

from avalanche.training import AGEM

from avalanche_ext.registry import register


@register(
    name="agem",
    family="hybrid",
    paper="Chaudhry, Ranzato, Rohrbach, Elhoseiny, Efficient Lifelong Learning with A-GEM, ICLR 2019, arXiv:1812.00420",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-5, 1e-3), "sample_size": (64, 512)},
    hparams={"patterns_per_exp": 100, "sample_size": 64},
    per_benchmark={"split_mnist5k": {"patterns_per_exp": 256, "lr": 3e-5, "sample_size": 512},
                   "permuted_mnist5k": {"patterns_per_exp": 256}},
    summary="project the gradient when it conflicts with the average memory gradient",
    amp=False,  # no mixed precision: A-GEM's plugin runs a backward pass on the memory and projects the gradient
)
def build(ctx):
    model = ctx.model()
    return AGEM(model=model, optimizer=ctx.optimizer(model), patterns_per_exp=ctx.hp.patterns_per_exp,
                sample_size=ctx.hp.sample_size, **ctx.strategy_args())
