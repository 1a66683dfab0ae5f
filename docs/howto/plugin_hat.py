"""HAT added to Avalanche's Naive on your own task-incremental stream of scikit-learn digits."""

import os

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_ext.models import HATNet
from avalanche_ext.plugins import HATPlugin

EPOCHS = int(os.environ.get("HOWTO_EPOCHS", 10))  # HAT stays near chance with too few epochs
torch.manual_seed(0)
x, y = load_digits(return_X_y=True)  # 1,797 digits of 8x8 pixels, classes 0-9
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
train, test = TensorDataset(x[::2], y[::2]), TensorDataset(x[1::2], y[1::2])
train.targets, test.targets = y[::2], y[1::2]  # Avalanche reads the classes from `targets`
# task-IL: experience t has task label t and two classes under their original ids, e.g. [1, 4]
benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=True, seed=0)

# HAT gates your own linear layers; each task's head must be as wide as the largest class id + 1
model = HATNet([nn.Linear(64, 100), nn.Linear(100, 100)], n_outputs=10)
strategy = Naive(
    model=model,
    optimizer=torch.optim.SGD(model.parameters(), lr=0.1),  # plain SGD: HAT refuses momentum, weight decay, Adam
    criterion=nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=EPOCHS, eval_mb_size=256,
    plugins=[HATPlugin(c=0.75)],
    evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
)
task0 = "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"
for experience in benchmark.train_stream:
    strategy.train(experience)
    metrics = strategy.eval(benchmark.test_stream)
    print(f"after task {experience.task_label}: task 0 accuracy {metrics[task0]:.3f}")
    if experience.current_experience == 0:
        learned = metrics[task0]
assert metrics[task0] == learned  # the masks keep task 0's predictions exactly as they were
accuracy = sum(metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}"] for t in range(5)) / 5
print(f"accuracy {accuracy:.3f} (mean over the 5 tasks, each given its task label)")
