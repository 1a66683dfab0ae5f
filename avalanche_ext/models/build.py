"""The plain networks recipes build: ``features`` (MLP or CNN) and a single- or multi-head classifier.

Every network exposes ``features`` (input -> hidden representation) and a head named
``classifier``, the layout of Avalanche's ``SimpleMLP``, so plugins that address a layer
by name (CWR*, latent replay) find it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from torch import nn

from .cnn import cnn_features
from .mlp import mlp_features
from .resnet import resnet18_features


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


#: The architectures :func:`build_network` knows.
ARCHS = ("mlp", "cnn", "resnet18")


def build_network(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    arch: str = "mlp",
    multihead: bool = False,
    hidden: int = 400,
    layers: int = 2,
    dropout: float = 0.0,
) -> nn.Module:
    """Build the default network of a recipe.

    Args:
        input_shape: ``(C, H, W)`` of one input.
        n_outputs: units of one head.
        arch: ``"mlp"`` (``layers`` hidden layers of ``hidden`` units), ``"cnn"`` (a small CNN whose
            representation has ``hidden`` units) or ``"resnet18"`` (the reduced ResNet-18 of GEM, A-GEM and
            DER for 32x32 inputs, 20 base filters, a 160-unit representation; ``hidden``, ``layers`` and
            ``dropout`` do not apply).
        multihead: one head per task label (task-IL) instead of one shared head.
        hidden: width of the hidden layers / of the representation.
        layers: number of hidden layers of the MLP.
        dropout: dropout after each hidden layer of the MLP.

    Raises:
        ValueError: ``arch`` is not one of :data:`ARCHS`.
    """
    if arch == "mlp":
        features = mlp_features(math.prod(int(d) for d in input_shape), [hidden] * layers, dropout)
    elif arch == "cnn":
        features = cnn_features(int(input_shape[0]), hidden)
    elif arch == "resnet18":
        features = resnet18_features(int(input_shape[0]))
        hidden = features.out_features
    else:
        raise ValueError(f"unknown arch {arch!r}: use one of {', '.join(repr(a) for a in ARCHS)}")
    cls = MultiHeadNet if multihead else Classifier
    return cls(features, hidden, n_outputs)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ARCHS", "Classifier", "MultiHeadNet", "build_network", "count_parameters"]
