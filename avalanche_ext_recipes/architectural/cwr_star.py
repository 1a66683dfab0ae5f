"""CWR*: copy-weight with re-init; consolidated per-class output weights, trained trunk."""

from avalanche.training import CWRStar

from avalanche_ext.registry import register


@register(
    name="cwr_star",
    family="architectural",
    paper="Lomonaco & Maltoni, CORe50, CoRL 2017 (CWR); Lomonaco et al., Rehearsal-free CL over small non-i.i.d. batches, CVPRW 2020 (CWR*), arXiv:1907.03799",
    scenarios=("class",),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    summary="consolidated per-class output weights, reset temporary weights every experience",
)
def build(ctx):
    model = ctx.model(multihead=False)
    return CWRStar(model=model, optimizer=ctx.optimizer(model), cwr_layer_name="classifier", **ctx.strategy_args())
