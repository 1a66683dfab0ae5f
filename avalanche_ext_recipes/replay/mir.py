"""Maximally Interfered Retrieval: replay the memory samples a virtual update would hurt most."""

from avalanche.training import Naive

from avalanche_ext.plugins.mir import MIRPlugin
from avalanche_ext.registry import register


@register(
    name="mir",
    family="replay",
    paper="Aljundi et al., Online Continual Learning with Maximally Interfered Retrieval, NeurIPS 2019, arXiv:1908.04742",
    # Avalanche 0.6.0's MIR drops from its replay pool every class of the last minibatch of the
    # previous experience (so the experience just learned is never replayed, and with labels every
    # experience reuses nothing is); MIRPlugin draws its candidates from the whole memory.
    scenarios=("class", "task", "domain"),
    grid={"lr": (1e-3, 3e-3), "subsample": (50, 160)},
    hparams={"mem_size": 200, "subsample": 50, "batch_size_mem": 10},
    per_benchmark={"split_mnist5k": {"mem_size": 1000, "batch_size_mem": 32, "subsample": 160},
                   "permuted_mnist5k": {"mem_size": 1000},
                   "split_fmnist": {"mem_size": 1000}, "permuted_fmnist": {"mem_size": 1000}},
    summary="retrieve the memory samples whose loss rises most after a virtual SGD step",
    amp=False,  # no mixed precision: MIR's plugin takes a virtual SGD step from gradients of its own
)
def build(ctx):
    hp = ctx.hp
    model = ctx.model()
    mir = MIRPlugin(mem_size=hp.mem_size, subsample=hp.subsample, batch_size_mem=hp.batch_size_mem)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[mir]))
