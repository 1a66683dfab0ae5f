"""Random replay, experience-balanced: after experience i keep mem/i random samples of each."""

from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ExperienceBalancedBuffer

from avalanche_ext.registry import register


@register(
    name="replay",
    family="replay",
    paper="Experience replay / naive rehearsal (Chaudhry et al. 2019, arXiv:1902.10486; Hsu et al. 2018)",
    scenarios=("class", "task", "domain"),
    hparams={"mem_size": 200, "batch_size_mem": None},
    per_benchmark={"split_mnist5k": {"mem_size": 1000}, "permuted_mnist5k": {"mem_size": 1000},
                   "split_fmnist": {"mem_size": 1000}, "permuted_fmnist": {"mem_size": 1000}},
    summary="rehearse a random, experience-balanced memory (mem/i samples per experience)",
)
def build(ctx):
    model = ctx.model()
    buffer = ExperienceBalancedBuffer(max_size=ctx.hp.mem_size, adaptive_size=True)
    # batch_size_mem: memory samples per mini-batch; None replays as many as the training batch holds.
    replay = ReplayPlugin(mem_size=ctx.hp.mem_size, batch_size_mem=ctx.hp.batch_size_mem, storage_policy=buffer)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args(plugins=[replay]))
