"""Progressive Neural Networks: a new column per task with lateral connections to frozen old columns."""

from avalanche.models import PNN
from avalanche.training import PNNStrategy

from avalanche_ext.registry import register


@register(
    name="pnn",
    family="architectural",
    paper="Rusu et al., Progressive Neural Networks, 2016, arXiv:1606.04671",
    scenarios=("task",),
    hparams={"pnn_hidden": 100},
    summary="one column per task, lateral adapters from frozen earlier columns",
    amp=False,  # no mixed precision: Avalanche's PNN writes each task's output into a float32 tensor
)
def build(ctx):
    hp = ctx.hp
    model = PNN(num_layers=hp.layers, in_features=ctx.stream.input_size, hidden_features_per_column=hp.pnn_hidden)
    return PNNStrategy(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
