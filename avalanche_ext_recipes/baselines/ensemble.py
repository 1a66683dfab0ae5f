"""Ensemble: one independent network per experience, picked by task label or combined."""

from avalanche.training import Naive

from avalanche_ext.models.ensemble import Ensemble
from avalanche_ext.plugins.ensemble import EnsemblePlugin
from avalanche_ext.registry import register


@register(
    name="ensemble",
    family="baseline",
    paper="The Ensemble baseline of CL surveys, e.g. De Lange et al., A Continual Learning Survey: Defying "
          "Forgetting in Classification Tasks, TPAMI 2021, arXiv:1909.08383",
    scenarios=("class", "task", "domain"),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    hparams={"combine": "mean_softmax"},
    summary="one network per experience; task-IL picks it by task label, class-IL combines the members' softmax",
)
def build(ctx):
    mode = "task" if ctx.stream.multihead else "class"

    def member():
        return ctx.model(multihead=False)

    model = Ensemble(member, ctx.stream.n_outputs, mode=mode, combine=ctx.hp.combine)
    # the optimizer starts on the first member; the plugin points it at each new member
    optimizer = ctx.optimizer(model)
    return Naive(model=model, optimizer=optimizer, **ctx.strategy_args(plugins=[EnsemblePlugin()]))
