"""The reduced ResNet-18 of the gradient-episodic-memory line of work, for 32x32 images.

Idea:
    A ResNet-18 (four stages of two ``BasicBlock`` each) with a third of the usual width:
    ``nf = 20`` base filters, so the stages have 20, 40, 80 and 160 channels. The stem is
    one 3x3 convolution with stride 1 and no max-pool, which suits 32x32 inputs (CIFAR,
    Tiny ImageNet resized, CORe50 at 32x32): the spatial size goes 32 -> 32 -> 16 -> 8 -> 4
    before a global average pool, so the representation has ``8 * nf = 160`` units. With a
    100-way linear head the network has 1,109,240 parameters, about 1.1 M.

Paper:
    Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017,
    https://arxiv.org/abs/1706.08840; used again by Chaudhry et al., "Efficient Lifelong
    Learning with A-GEM", ICLR 2019, https://arxiv.org/abs/1812.00420, and (at full width)
    by Buzzega et al., "Dark Experience for a General Continual Learning", NeurIPS 2020,
    https://arxiv.org/abs/2004.07211.

Layout:
    :func:`resnet18_features` returns the feature extractor (images -> ``out_features``
    units), to be put under ``.features`` of the pack's
    :class:`~avalanche_ext.models.build.Classifier` (one head ``.classifier``) or
    :class:`~avalanche_ext.models.build.MultiHeadNet` (one head per task), the layout the
    plugins that address a layer by name expect.

Batch norm:
    Every convolution is followed by ``BatchNorm2d``, whose running statistics and affine
    parameters are shared by all experiences and move with every training batch. Methods
    that protect old tasks by masking or generating *weights* do not protect these:

    * mask methods (SupSup, Piggyback, HAT, PackNet) must freeze batch norm after the first
      task, keep statistics per task (:class:`~avalanche_ext.models.supermask.TaskBatchNorm`),
      or be given a network without it; otherwise old tasks' accuracy drifts although their
      masks are fixed;
    * hypernetworks generate the affine parameters per task, but the running statistics are
      buffers: keep them per task (as :class:`~avalanche_ext.models.hypernet.FunctionalTarget`
      does) or evaluation normalises old tasks with the newest task's statistics;
    * regularisers (EWC, SI, MAS) and gradient projection (GEM, A-GEM) constrain the affine
      parameters like any weight, but not the running statistics;
    * evaluate in ``eval()`` mode (Avalanche's strategies do), and avoid training batches of
      one sample.

Scenarios:
    Class-, task- (with ``MultiHeadNet``) and domain-incremental. Made for 32x32 inputs;
    other sizes work too (global average pooling: 28x28 MNIST, 8x8 digits, 64x64 Tiny
    ImageNet, 128x128 CORe50), with any number of input channels.

Example:
    >>> from avalanche_ext.models.build import Classifier
    >>> features = resnet18_features(3)
    >>> net = Classifier(features, features.out_features, 100)
    >>> net(torch.zeros(8, 3, 32, 32)).shape
    torch.Size([8, 100])
"""

from __future__ import annotations

import torch
from torch import nn

from .layers.resnet_layout import RESNET18_BLOCKS, block_layout


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    The shortcut is the identity, or a strided 1x1 convolution with batch norm where the
    block changes the width or the spatial size.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of its output.
        stride: stride of the first convolution (2 halves the spatial size).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetFeatures(nn.Module):
    """Stem, four stages of :class:`BasicBlock`, global average pool, flatten.

    Args:
        in_channels: channels of the input images (3 for RGB, 1 for grey).
        nf: base width; the stages have ``nf``, ``2 nf``, ``4 nf`` and ``8 nf`` channels.
        blocks: blocks per stage.

    Attributes:
        out_features: size of the flat representation (``8 * nf``).

    Raises:
        ValueError: ``in_channels`` or ``nf`` below 1, or not four stages of at least one block.
    """

    def __init__(self, in_channels: int = 3, nf: int = 20, blocks: tuple[int, ...] = RESNET18_BLOCKS):
        super().__init__()
        layout = iter(block_layout(in_channels, nf, blocks))
        self.stem = nn.Sequential(_conv3x3(in_channels, nf), nn.BatchNorm2d(nf), nn.ReLU())
        stages = [nn.Sequential(*(BasicBlock(*next(layout)) for _ in range(n))) for n in blocks]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.out_features = nf * 2 ** (len(blocks) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.flatten(self.pool(x))


def resnet18_features(in_channels: int = 3, nf: int = 20) -> ResNetFeatures:
    """The reduced ResNet-18 feature extractor: images ``(N, C, H, W)`` -> ``(N, 8 nf)``.

    Args:
        in_channels: channels of the input images.
        nf: base width (20 in GEM / A-GEM, 64 for the full-width ResNet-18 of DER).

    Returns:
        A :class:`ResNetFeatures` whose ``out_features`` is the representation size.
    """
    return ResNetFeatures(in_channels, nf)


__all__ = ["BasicBlock", "RESNET18_BLOCKS", "ResNetFeatures", "resnet18_features"]
