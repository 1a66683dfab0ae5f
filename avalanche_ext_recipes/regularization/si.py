"""Synaptic Intelligence: path-integral importance of every weight, quadratic penalty.

Uses Avalanche's SI algorithm through :class:`SafeSynapticIntelligencePlugin`: Avalanche 0.6.0's own
plugin learns nothing on the CPU (its weight snapshots are views of the live parameters).
"""

from avalanche.training import Naive

from avalanche_ext.plugins import SafeSynapticIntelligencePlugin
from avalanche_ext.registry import register


@register(
    name="si",
    family="regularization",
    paper="Zenke, Poole, Ganguli, Continual Learning Through Synaptic Intelligence, ICML 2017, arXiv:1703.04200",
    scenarios=("class", "task", "domain"),
    grid={"si_lambda": (1.0, 10.0, 100.0, 1000.0)},
    hparams={"si_lambda": 1.0, "eps": 0.1},
    # chosen on the validation split: docs/results/validation/si_*.md (Avalanche clips every importance
    # to 1e-3, so useful penalties are large)
    per_benchmark={"split_mnist5k": {"si_lambda": 1000.0}, "permuted_mnist5k": {"si_lambda": 10.0}},
    summary="per-weight importance from the path integral of the gradient; quadratic penalty",
)
def build(ctx):
    model = ctx.model()
    plugin = SafeSynapticIntelligencePlugin(ctx.hp.si_lambda, eps=ctx.hp.eps)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[plugin]))
