"""The plain networks recipes build: an MLP and a small CNN, single- or multi-head.

Every network exposes ``features`` (input -> hidden representation) and a head named
``classifier``, the layout of Avalanche's ``SimpleMLP``, so plugins that address a layer
by name (CWR*, latent replay) find it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from torch import nn


def mlp_features(input_size: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """``Flatten -> (Linear -> ReLU [-> Dropout])*`` over the given hidden sizes."""
    layers: list[nn.Module] = [nn.Flatten()]
    prev = input_size
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = h
    return nn.Sequential(*layers)


def cnn_features(in_channels: int, hidden: int) -> nn.Sequential:
    """Two conv blocks and a linear layer to ``hidden`` units; works for 8x8 to 32x32 inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4, hidden), nn.ReLU(),
    )


class Classifier(nn.Module):
    """``features`` followed by one linear head ``classifier``."""

    def __init__(self, features: nn.Module, hidden: int, n_outputs: int):
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MultiHeadNet(MultiTaskModule):
    """Shared ``features`` and one head per task (Avalanche's ``MultiHeadClassifier``)."""

    def __init__(self, features: nn.Module, hidden: int, n_outputs: int):
        super().__init__()
        self.features = features
        self.classifier = MultiHeadClassifier(hidden, initial_out_features=n_outputs)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.classifier(self.features(x), task_label)


def build_network(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    arch: str = "mlp",
    hidden: int = 400,
    layers: int = 2,
    dropout: float = 0.0,
    multihead: bool = False,
) -> nn.Module:
    """Build the default network of a recipe.

    Args:
        input_shape: ``(C, H, W)`` of one input.
        n_outputs: units of one head.
        arch: ``"mlp"`` (``layers`` hidden layers of ``hidden`` units) or ``"cnn"``.
        hidden: width of the hidden layers / of the representation.
        layers: number of hidden layers of the MLP.
        dropout: dropout after each hidden layer of the MLP.
        multihead: one head per task label (task-IL) instead of one shared head.
    """
    if arch == "mlp":
        size = 1
        for d in input_shape:
            size *= int(d)
        features = mlp_features(size, [hidden] * layers, dropout)
    elif arch == "cnn":
        features = cnn_features(int(input_shape[0]), hidden)
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'mlp' or 'cnn'")
    cls = MultiHeadNet if multihead else Classifier
    return cls(features, hidden, n_outputs)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["Classifier", "MultiHeadNet", "build_network", "cnn_features", "count_parameters", "mlp_features"]
