"""Save a model with its plugin's state, restore both into fresh objects and train on: HAT on task-IL digits."""

import os

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_ext.models import HATNet
from avalanche_ext.plugins import HATPlugin

EPOCHS = int(os.environ.get("HOWTO_EPOCHS", 10))
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y),
                                                    test_size=0.5, stratify=y, random_state=0)
train, test = TensorDataset(x_train, y_train), TensorDataset(x_test, y_test)
train.targets, test.targets = y_train, y_test
# each experience's two classes become 0 and 1, so a head of two units per task is enough
benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=True, seed=0, class_ids_from_zero_in_each_exp=True)


def build():
    """Model, plugin and strategy, as a new process builds them before it restores a checkpoint."""
    torch.manual_seed(0)
    model = HATNet([nn.Linear(64, 100), nn.Linear(100, 100)], n_outputs=2)
    plugin = HATPlugin(c=0.75)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=EPOCHS, eval_mb_size=256,
                     plugins=[plugin], evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    return model, plugin, strategy


def task_accuracies(strategy, n_tasks):
    metrics = strategy.eval(benchmark.test_stream[:n_tasks])
    return [round(metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task{t:03d}/Exp{t:03d}"], 4) for t in range(n_tasks)]


model, plugin, strategy = build()
for experience in benchmark.train_stream[:2]:
    strategy.train(experience)
saved = task_accuracies(strategy, 2)
# the model's weights and the plugin's state (HAT: the cumulative attention, the tasks learned)
torch.save({"model": model.state_dict(), "plugin": plugin.state_dict()}, "hat_checkpoint.pt")

model, plugin, strategy = build()
checkpoint = torch.load("hat_checkpoint.pt")  # torch's defaults: tensors and plain containers only
for task in checkpoint["plugin"]["trained_tasks"]:
    model.add_task(task)  # HATNet makes a task's embeddings and head when it first meets the task
model.load_state_dict(checkpoint["model"])
plugin.load_state_dict(checkpoint["plugin"])
restored = task_accuracies(strategy, 2)
print(f"tasks 0 and 1: accuracy {saved} when saved, {restored} restored")
assert restored == saved

for experience in benchmark.train_stream[2:]:  # train on: the restored masks protect tasks 0 and 1
    strategy.train(experience)
final = task_accuracies(strategy, 5)
assert final[:2] == saved
print(f"accuracy {sum(final) / 5:.3f} (mean over the 5 tasks); tasks 0 and 1 still {final[:2]}")
