"""Online EWC: one running Fisher estimate, decayed by gamma, instead of one per experience."""

from avalanche.training import EWC

from avalanche_ext.registry import register


@register(
    name="online_ewc",
    family="regularization",
    paper="Schwarz et al., Progress & Compress, ICML 2018, arXiv:1805.06370 (online EWC); Kirkpatrick et al. PNAS 2017",
    scenarios=("class", "task", "domain"),
    grid={"ewc_lambda": (1e2, 1e3, 1e4, 1e5)},
    hparams={"ewc_lambda": 100.0, "decay_factor": 0.9},
    # split_mnist5k: chosen on the validation split, docs/results/validation/online_ewc_split_mnist5k_task.md
    per_benchmark={"split_mnist5k": {"ewc_lambda": 100000.0, "decay_factor": 0.9},
                   "permuted_mnist5k": {"ewc_lambda": 1000.0}},
    summary="EWC with a single Fisher matrix accumulated with decay gamma",
)
def build(ctx):
    model = ctx.model()
    return EWC(model=model, optimizer=ctx.optimizer(model), ewc_lambda=ctx.hp.ewc_lambda, mode="online",
               decay_factor=ctx.hp.decay_factor, **ctx.strategy_args())
