"""The layout of the reduced ResNet-18: which basic blocks its stages hold, shared by every network built on it.

:class:`~avalanche_ext.models.resnet.ResNetFeatures` (the plain backbone) and
:class:`~avalanche_ext.models.hat.HATResNet` (HAT's gated one) build the same stages from it.
"""

from __future__ import annotations

from typing import Sequence

#: Blocks per stage of ResNet-18.
RESNET18_BLOCKS = (2, 2, 2, 2)


def block_layout(in_channels: int, nf: int, blocks: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(in_channels, out_channels, stride)`` of every basic block, stage after stage.

    Stage ``i`` has ``nf * 2**i`` channels; its first block takes the previous stage's width
    and, from the second stage on, halves the spatial size (stride 2).

    Raises:
        ValueError: ``in_channels`` or ``nf`` below 1, or not four stages of at least one block.
    """
    if in_channels < 1 or nf < 1:
        raise ValueError(f"in_channels and nf must be >= 1, got in_channels={in_channels}, nf={nf}")
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError(f"blocks must give four stages of at least one block each, got {tuple(blocks)}")
    layout, width = [], nf
    for i, n in enumerate(blocks):
        out = nf * 2**i
        for j in range(n):
            layout.append((width if j == 0 else out, out, (1 if i == 0 else 2) if j == 0 else 1))
        width = out
    return layout


__all__ = ["RESNET18_BLOCKS", "block_layout"]
