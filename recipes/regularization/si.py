"""Synaptic Intelligence: path-integral importance of every weight, quadratic penalty."""

from avalanche.training import SynapticIntelligence

from avalanche_ext.registry import register


@register(
    name="si",
    family="regularization",
    paper="Zenke, Poole, Ganguli, Continual Learning Through Synaptic Intelligence, ICML 2017, arXiv:1703.04200",
    scenarios=("class", "task", "domain"),
    hparams={"si_lambda": 1.0, "eps": 0.1},
    summary="per-weight importance from the path integral of the gradient; quadratic penalty",
)
def build(ctx):
    model = ctx.model()
    return SynapticIntelligence(model=model, optimizer=ctx.optimizer(model), si_lambda=ctx.hp.si_lambda,
                                eps=ctx.hp.eps, **ctx.strategy_args())
