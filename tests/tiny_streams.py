"""Small synthetic Avalanche benchmarks for tests that need a real strategy loop."""

from __future__ import annotations

import torch


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
