"""PackNet: after each task, prune the task's least important weights and freeze the rest."""

from avalanche.models.packnet import PackNetModel
from avalanche.training import PackNet

from avalanche_ext.models.packnet import prepare_for_packnet
from avalanche_ext.registry import register


class _PackNetMultiHead(PackNetModel):
    """PackNet over the shared ``features``, and one head per task outside the pruned network.

    Avalanche's ``PackNetModel`` prunes every layer of what it wraps, output layer included, and
    calls it without the task label: a single head is then shared by all tasks. In task-IL each
    task numbers its classes from zero, so each output unit would mean another class in each task,
    with the earlier tasks' frozen weights (and the first task's frozen biases) still feeding it and
    the last task left a sliver of its weights. As in the paper, each task gets its own classifier.
    """

    def __init__(self, net):
        super().__init__(net.features)
        self.classifier = net.classifier  # MultiHeadClassifier: a head per task label, trained on its task only

    def forward(self, x, task_id):
        return self.classifier(super().forward(x, task_id), task_id)


@register(
    name="packnet",
    family="architectural",
    paper="Mallya & Lazebnik, PackNet: Adding Multiple Tasks to a Single Network by Iterative Pruning, CVPR 2018, arXiv:1711.05769",
    scenarios=("task",),
    grid={"prune_proportion": (0.5, 0.75, 0.9, 0.95)},
    hparams={"post_prune_epochs": 1, "prune_proportion": 0.5},
    per_benchmark={"split_mnist5k": {"prune_proportion": 0.9}},
    summary="iterative magnitude pruning; each task owns a frozen subset of weights",
    amp=False,  # no mixed precision: the per-task heads write their outputs into a float32 tensor
)
def build(ctx):
    hp = ctx.hp
    if not 0 < hp.prune_proportion < 1:
        raise ValueError(f"prune_proportion must be in (0, 1), got {hp.prune_proportion}")
    net = ctx.model(multihead=True)
    # norm layers (arch=resnet18) are trained with the first task and frozen after it; layers without bias and
    # restored models keep their isolation (see avalanche_ext.models.packnet)
    prepare_for_packnet(net.features)
    model = _PackNetMultiHead(net)
    strategy = PackNet(model=model, optimizer=ctx.optimizer(model), post_prune_epochs=hp.post_prune_epochs,
                       prune_proportion=hp.prune_proportion,
                       # `epochs` of training, then `post_prune_epochs` of fine-tuning after pruning.
                       **ctx.strategy_args(train_epochs=hp.epochs + hp.post_prune_epochs))
    # Avalanche 0.6.0's PackNet nests the plugins it is given in a list ([plugins, PackNetPlugin]), where
    # no hook reaches them: the loss guard, the run's stop watch and mixed precision never ran
    strategy.plugins = [p for item in strategy.plugins for p in (item if isinstance(item, list) else [item])]
    return strategy
