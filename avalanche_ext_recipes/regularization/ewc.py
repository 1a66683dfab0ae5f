"""Elastic Weight Consolidation with one Fisher penalty per past experience."""

from avalanche.training import EWC

from avalanche_ext.registry import register


@register(
    name="ewc",
    family="regularization",
    paper="Kirkpatrick et al., Overcoming catastrophic forgetting in neural networks, PNAS 2017, arXiv:1612.00796",
    scenarios=("class", "task", "domain"),
    grid={"ewc_lambda": (1e2, 1e3, 1e4, 1e5)},
    hparams={"ewc_lambda": 100.0},
    # split_mnist5k: chosen on the validation split, docs/results/validation/ewc_split_mnist5k_task.md
    per_benchmark={"split_mnist5k": {"ewc_lambda": 100000.0}, "permuted_mnist5k": {"ewc_lambda": 1000.0}},
    summary="quadratic penalty weighted by the Fisher information of each past experience",
)
def build(ctx):
    model = ctx.model()
    return EWC(model=model, optimizer=ctx.optimizer(model), ewc_lambda=ctx.hp.ewc_lambda, mode="separate",
               **ctx.strategy_args())
