"""The default multilayer perceptron's feature extractor."""

from __future__ import annotations

from typing import Sequence

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


__all__ = ["mlp_features"]
