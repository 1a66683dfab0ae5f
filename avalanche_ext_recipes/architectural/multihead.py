"""Multi-head: a shared trunk and one output head per task, chosen by the task label."""

from avalanche.training import Naive

from avalanche_ext.registry import register


@register(
    name="multihead",
    family="architectural",
    paper="Multi-head evaluation (e.g. Li & Hoiem 2016; Hsu et al. 2018, arXiv:1810.12488); Avalanche MultiHeadClassifier",
    scenarios=("task",),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    summary="shared features, one head per task label (task-IL only)",
    amp=False,  # no mixed precision: the multi-head network writes its heads' outputs into a float32 tensor
)
def build(ctx):
    model = ctx.model(multihead=True)
    return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
