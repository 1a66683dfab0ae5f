"""Cumulative training with Avalanche on split digits (class-IL): each experience retrains on all data so far."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Cumulative
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("cumulative", n_experiences=stream.n_experiences)])
strategy = Cumulative(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=16, train_epochs=1, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)  # trains on the union of experiences 0..i
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"cumulative, class-IL: final stream accuracy {acc:.3f}")
