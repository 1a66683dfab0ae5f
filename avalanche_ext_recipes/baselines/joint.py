"""Joint (offline) training on the whole stream at once: the upper bound."""

from avalanche.training import JointTraining

from avalanche_ext.registry import register


@register(
    name="joint",
    family="baseline",
    paper="Offline training on all data; the upper bound (e.g. Hsu et al. 2018, arXiv:1810.12488)",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    summary="train once on the concatenation of all experiences (upper bound)",
    trains_once=True,
    # chosen on the validation split: docs/results/validation/joint_split_mnist5k_class.md
    per_benchmark={"split_mnist5k": {"epochs": 12}},
)
def build(ctx):
    model = ctx.model()
    return JointTraining(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
