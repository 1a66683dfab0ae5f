"""Multi-head network with Avalanche on split digits (task-IL): shared features, one head per task label."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)  # task labels 0 and 1
# multihead=True: the head is Avalanche's MultiHeadClassifier, which adds a head for each new task label.
model = build_network(stream.input_shape, stream.n_outputs, hidden=64, multihead=True)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("multihead", n_experiences=stream.n_experiences)])
strategy = Naive(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=16, train_epochs=1, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"multihead, task-IL: final stream accuracy {acc:.3f} with {len(model.classifier.classifiers)} heads")
