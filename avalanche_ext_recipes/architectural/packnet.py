"""PackNet: after each task, prune the task's least important weights and freeze the rest."""

from avalanche.models.packnet import PackNetModel
from avalanche.training import PackNet

from avalanche_ext.registry import register


@register(
    name="packnet",
    family="architectural",
    paper="Mallya & Lazebnik, PackNet: Adding Multiple Tasks to a Single Network by Iterative Pruning, CVPR 2018, arXiv:1711.05769",
    scenarios=("task",),
    grid={"lr": (1e-3, 3e-3), "prune_proportion": (0.5, 0.75)},
    hparams={"post_prune_epochs": 1, "prune_proportion": 0.5},
    summary="iterative magnitude pruning; each task owns a frozen subset of weights",
)
def build(ctx):
    hp = ctx.hp
    if not 0 < hp.prune_proportion < 1:
        raise ValueError(f"prune_proportion must be in (0, 1), got {hp.prune_proportion}")
    # Avalanche's PackNetModel selects each task's weights, output layer included, by the task
    # label and calls the wrapped network without it: a single head is per task after masking.
    model = PackNetModel(ctx.model(multihead=False))
    return PackNet(model=model, optimizer=ctx.optimizer(model), post_prune_epochs=hp.post_prune_epochs,
                   prune_proportion=hp.prune_proportion,
                   # `epochs` of training, then `post_prune_epochs` of fine-tuning after pruning.
                   **ctx.strategy_args(train_epochs=hp.epochs + hp.post_prune_epochs))
