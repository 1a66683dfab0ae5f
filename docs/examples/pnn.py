"""Progressive Neural Networks with Avalanche on split digits (task-IL): one new column per task."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.models import PNN
from avalanche.training import PNNStrategy
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)  # PNN needs a task label per experience
# Avalanche's PNN is an MLP of its own: flat inputs, `num_layers` layers of `hidden_features_per_column` units.
model = PNN(num_layers=2, in_features=stream.input_size, hidden_features_per_column=32)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("pnn", n_experiences=stream.n_experiences)])
strategy = PNNStrategy(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=16, train_epochs=1, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)  # adds a column (and lateral adapters), freezes the older ones
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"pnn, task-IL: final stream accuracy {acc:.3f} with {model.layers[0].num_columns} columns")
