"""Maximally Interfered Retrieval: replay the memory samples a virtual update would hurt most."""

from avalanche.training import MIR

from avalanche_ext.registry import register


@register(
    name="mir",
    family="replay",
    paper="Aljundi et al., Online Continual Learning with Maximally Interfered Retrieval, NeurIPS 2019, arXiv:1908.04742",
    # Avalanche 0.6.0's MIR drops from its replay pool every class of the last minibatch of the
    # previous experience: with the labels every experience reuses (task/domain-IL) it replays nothing.
    scenarios=("class",),
    hparams={"mem_size": 200, "subsample": 50, "batch_size_mem": 10},
    per_benchmark={"split_mnist5k": {"mem_size": 500}, "permuted_mnist5k": {"mem_size": 500},
                   "split_fmnist": {"mem_size": 500}},
    summary="retrieve the memory samples whose loss rises most after a virtual SGD step",
    amp=False,  # no mixed precision: MIR's plugin takes a virtual SGD step from gradients of its own
)
def build(ctx):
    hp = ctx.hp
    model = ctx.model()
    return MIR(model=model, optimizer=ctx.optimizer(model), mem_size=hp.mem_size, subsample=hp.subsample,
               batch_size_mem=hp.batch_size_mem, **ctx.strategy_args())
