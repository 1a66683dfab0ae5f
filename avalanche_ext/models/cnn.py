"""The default small convolutional network's feature extractor."""

from __future__ import annotations

from torch import nn


def cnn_features(in_channels: int, hidden: int) -> nn.Sequential:
    """Two conv blocks and a linear layer to ``hidden`` units; works for 8x8 to 32x32 inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4, hidden), nn.ReLU(),
    )


__all__ = ["cnn_features"]
