"""Small synthetic Avalanche benchmarks, and the small strategy tests run on them."""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin


def two_class_stream(n_exp: int = 3, dim: int = 6, per_class: int = 15, seed: int = 0):
    """``n_exp`` class-incremental experiences of two Gaussian classes each (labels 2e, 2e+1),
    separable by their mean; the test set is each experience's first 10 training samples."""
    from avalanche.benchmarks import tensors_benchmark

    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for e in range(n_exp):
        y = torch.tensor([2 * e, 2 * e + 1]).repeat(per_class)
        x = torch.randn(2 * per_class, dim, generator=g) + y[:, None].float()
        train.append((x, y))
        test.append((x[:10], y[:10]))
    return tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0] * n_exp)


class BatchLabels(SupervisedPlugin):
    """Records the labels of every training mini-batch of the current experience."""

    def __init__(self):
        super().__init__()
        self.labels: list[int] = []

    def before_training_exp(self, strategy, **kwargs):
        self.labels = []

    def before_forward(self, strategy, **kwargs):
        self.labels.extend(strategy.mb_y.tolist())


def tiny_naive(plugins, *, train_mb_size: int = 8, train_epochs: int = 1):
    """Avalanche's ``Naive`` with a 6-16-6 MLP and SGD, for :func:`two_class_stream`."""
    from avalanche.training import Naive

    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6))
    return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=train_mb_size, train_epochs=train_epochs,
                 eval_mb_size=64, plugins=plugins, evaluator=None)
