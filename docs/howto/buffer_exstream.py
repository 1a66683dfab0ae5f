"""ExStream's buffer in Avalanche's own ReplayPlugin, on your own class-incremental stream of digits."""

import os

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_ext.storage import ExStreamBuffer

EPOCHS = int(os.environ.get("HOWTO_EPOCHS", 5))
torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
train, test = TensorDataset(x[::2], y[::2]), TensorDataset(x[1::2], y[1::2])
train.targets, test.targets = y[::2], y[1::2]
# class-IL, as SplitMNIST: no task labels, classes keep their ids 0-9, one shared head of 10 units
benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, seed=0)

model = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 10))
# at most 10 stored inputs per class and 100 in all: a full class merges its two nearest points
buffer = ExStreamBuffer(max_size=100, per_class=10)
strategy = Naive(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), criterion=nn.CrossEntropyLoss(),
    train_mb_size=32, train_epochs=EPOCHS, eval_mb_size=256,
    plugins=[ReplayPlugin(mem_size=100, storage_policy=buffer)],  # stock replay, ExStream's memory
    evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
)
for experience in benchmark.train_stream:
    strategy.train(experience)
    accuracy = strategy.eval(benchmark.test_stream)["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
    print(f"after experience {experience.current_experience}: accuracy on all classes {accuracy:.3f}, "
          f"{len(buffer)} stored vectors")
counts = {label: n for (_, label), n in sorted(buffer.counts().items())}
print("samples each class's stored points stand for:", counts)  # they sum to the class's training samples
print(f"accuracy {accuracy:.3f}")
