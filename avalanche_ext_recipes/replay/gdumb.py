"""GDumb: greedy class-balanced sampler, then train from scratch on the memory only."""

from avalanche.training import GDumb

from avalanche_ext.registry import register


@register(
    name="gdumb",
    family="replay",
    paper="Prabhu, Torr, Dokania, GDumb: A Simple Approach that Questions Our Progress in Continual Learning, ECCV 2020",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    hparams={"mem_size": 200},
    # Own budget: GDumb retrains from scratch on its memory only (a few hundred or thousand samples) after
    # every experience, so it runs more epochs over far fewer samples than the stream's common budget.
    per_benchmark={"split_digits": {"mem_size": 200, "epochs": 15},
                   "split_mnist5k": {"mem_size": 1000, "epochs": 10},
                   "permuted_mnist5k": {"mem_size": 1000, "epochs": 10},
                   "split_fmnist": {"mem_size": 1000, "epochs": 10}},
    summary="class-balanced greedy memory; the model is retrained from scratch on it",
)
def build(ctx):
    model = ctx.model()
    return GDumb(model=model, optimizer=ctx.optimizer(model), mem_size=ctx.hp.mem_size, **ctx.strategy_args())
