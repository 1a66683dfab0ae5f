"""Progressive Neural Networks: a new column per task with lateral connections to frozen old columns."""

from avalanche.models import PNN
from avalanche.models.pnn import PNNLayer
from avalanche.training import PNNStrategy
from torch import nn

from avalanche_ext.registry import register


class _TrainedColumnsLayer(PNNLayer):
    """Avalanche's PNN layer, except that only training adds (and freezes) columns.

    Avalanche 0.6.0's ``PNNLayer.adaptation`` also runs when the strategy evaluates an experience,
    so evaluating the whole test stream after the first task gave every later task a column there
    and then, and each added column froze the one before it: tasks 2..T-1 trained on a frozen,
    random column (only their head learned).
    """

    def adaptation(self, experience):
        if self.training:
            super().adaptation(experience)


class _TrainedColumnsPNN(PNN):
    """Avalanche's PNN built from :class:`_TrainedColumnsLayer`; a task not trained yet has no column.

    Its evaluation goes to its head (created by the evaluation, every unit masked) on zero features:
    chance level, as an untrained head gives.
    """

    def __init__(self, num_layers: int, in_features: int, hidden_features_per_column: int, adapter: str = "mlp"):
        super().__init__(num_layers, in_features, hidden_features_per_column, adapter)
        sizes = [in_features] + [hidden_features_per_column] * (num_layers - 1)
        # PNN's own first layer uses the default MLP adapter whatever ``adapter`` says; so does this one.
        self.layers = nn.ModuleList(
            _TrainedColumnsLayer(n, hidden_features_per_column, adapter="mlp" if i == 0 else adapter)
            for i, n in enumerate(sizes)
        )

    def forward_single_task(self, x, task_label):
        if task_label not in self.layers[-1].task_to_module_idx:
            return self.classifier(x.new_zeros(len(x), self.out_features_per_columns), task_label)
        return super().forward_single_task(x, task_label)


@register(
    name="pnn",
    family="architectural",
    paper="Rusu et al., Progressive Neural Networks, 2016, arXiv:1606.04671",
    scenarios=("task",),
    grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)},
    hparams={"pnn_hidden": 100},
    per_benchmark={"split_mnist5k": {"pnn_hidden": 400}},
    summary="one column per task, lateral adapters from frozen earlier columns",
    amp=False,  # no mixed precision: Avalanche's PNN writes each task's output into a float32 tensor
    # Avalanche's PNN builds columns of linear layers over the flattened input: no conv net or ResNet
    choices={"arch": ("mlp",)},
)
def build(ctx):
    hp = ctx.hp
    model = _TrainedColumnsPNN(num_layers=hp.layers, in_features=ctx.stream.input_size,
                               hidden_features_per_column=hp.pnn_hidden)
    return PNNStrategy(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
