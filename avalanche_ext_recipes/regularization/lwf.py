"""Learning without Forgetting: distil the previous model's outputs on the new data."""

from avalanche.training import LwF

from avalanche_ext.registry import register


@register(
    name="lwf",
    family="regularization",
    paper="Li & Hoiem, Learning without Forgetting, ECCV 2016 / TPAMI 2017, arXiv:1606.09282",
    scenarios=("class", "task", "domain"),
    grid={"alpha": (1.0, 2.0), "temperature": (1.0, 2.0)},
    hparams={"alpha": 1.0, "temperature": 2.0},
    # chosen on the validation split: docs/results/validation/lwf_split_mnist5k_task.md
    per_benchmark={"split_mnist5k": {"alpha": 2.0, "temperature": 1.0}},
    summary="knowledge distillation from the previous model on current inputs",
)
def build(ctx):
    model = ctx.model()
    return LwF(model=model, optimizer=ctx.optimizer(model), alpha=ctx.hp.alpha, temperature=ctx.hp.temperature,
               **ctx.strategy_args())
