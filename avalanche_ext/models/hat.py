"""Networks for Hard Attention to the Task (HAT): gated layers, task embeddings, one head per task.

Every gated layer ``l`` (an ``nn.Linear`` or ``nn.Conv2d``) multiplies its activations by a
per-task attention vector $a^l_t = \\sigma(s\\, e^l_t)$, where $e^l_t$ is a learned task
embedding with one value per unit (per channel for a convolution) and $s$ a scale. During
training the scale is annealed within each epoch from $1/s_{max}$ to $s_{max}$ (by
:class:`~avalanche_ext.plugins.hat.HATPlugin`, which sets :attr:`HATModule.s`); in evaluation
the network always uses $s_{max}$, so the gates are (almost) binary. Each task has its
own head; its input is the last gated layer.

:class:`~avalanche_ext.models.layers.hat.HATModule` holds what every HAT network shares
(embeddings, heads, gates, the masks derived from which gated units each shared weight
connects); :class:`HATNet` gates a plain stack of layers, and :class:`HATResNet` the reduced
ResNet-18, with batch norm per task.

Serrà, Surís, Miron, Karatzoglou, *Overcoming catastrophic forgetting with hard attention
to the task*, ICML 2018, `arXiv:1801.01423 <https://arxiv.org/abs/1801.01423>`_.

Example:
    >>> net = build_hat_network((1, 28, 28), n_outputs=2, hidden=400, layers=2)
    >>> net.add_task(0)
    >>> net(torch.zeros(4, 1, 28, 28), 0).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .layers.hat import GATE_CUTOFF, HATModule
from .layers.resnet_layout import RESNET18_BLOCKS, block_layout


def _units(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    raise TypeError(f"HAT gates nn.Linear and nn.Conv2d layers, not {type(layer).__name__}")


class HATNet(HATModule):
    """A stack of gated layers with per-task embeddings and per-task heads.

    Forward pass of task ``t`` at scale ``s``:
    ``h <- post_l(dropout(relu(layer_l(h)) * sigmoid(s * e^l_t)))`` for each layer, then
    ``heads[t](h)``. A linear layer that follows a convolution flattens its input
    (channel-major, as ``nn.Flatten``), so each channel gate covers its spatial positions.

    Args:
        layers: the gated layers, ``nn.Linear`` or ``nn.Conv2d`` (``groups=1``); the last
            one must be ``nn.Linear`` (its units feed the heads).
        n_outputs: units of each task's head.
        posts: one module per layer applied after its gate (e.g. ``nn.MaxPool2d(2)``);
            ``None`` means nothing.
        s_max: the largest gate scale, used at the end of each epoch and in evaluation
            (paper: 400).
        dropout: dropout probability after each gate.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        n_outputs: int,
        *,
        posts: Optional[Sequence[Optional[nn.Module]]] = None,
        s_max: float = 400.0,
        dropout: float = 0.0,
    ) -> None:
        if not layers:
            raise ValueError("HATNet needs at least one gated layer")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        posts = list(posts) if posts is not None else [None] * len(layers)
        if len(posts) != len(layers):
            raise ValueError(f"posts has {len(posts)} entries for {len(layers)} layers")
        units = [_units(layer) for layer in layers]
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Conv2d):
                if layer.groups != 1:
                    raise ValueError(f"layer {i}: grouped convolutions are not supported")
                if i > 0 and (isinstance(layers[i - 1], nn.Linear) or layer.in_channels != units[i - 1]):
                    raise ValueError(f"layer {i}: a convolution must follow a convolution with {layer.in_channels} channels")
            elif i > 0 and layer.in_features % units[i - 1] != 0:
                raise ValueError(
                    f"layer {i}: in_features={layer.in_features} is not a multiple of the {units[i - 1]} units "
                    f"of the layer before it"
                )
        if not isinstance(layers[-1], nn.Linear):
            raise ValueError("the last gated layer must be nn.Linear: its units feed the heads")
        super().__init__(units, n_outputs, units[-1], s_max=s_max)
        self.layers = nn.ModuleList(layers)
        self.posts = nn.ModuleList([p if p is not None else nn.Identity() for p in posts])
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def connections(self) -> list[tuple[str, nn.Parameter, int, Optional[int]]]:
        out: list[tuple[str, nn.Parameter, int, Optional[int]]] = []
        for i, layer in enumerate(self.layers):
            out.append((f"layers.{i}.weight", layer.weight, i, i - 1 if i > 0 else None))
            if layer.bias is not None:
                out.append((f"layers.{i}.bias", layer.bias, i, None))
        return out

    def features(self, x: torch.Tensor, gates: Sequence[torch.Tensor], norms: Optional[nn.ModuleList]) -> torch.Tensor:
        h = x
        for layer, post, g in zip(self.layers, self.posts, gates):
            if isinstance(layer, nn.Linear) and h.dim() > 2:
                h = h.flatten(1)
            h = torch.relu(layer(h))
            h = h * g.view(1, -1, *((1,) * (h.dim() - 2)))
            h = post(self.dropout(h))
        return h.flatten(1) if h.dim() > 2 else h


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)


class HATBlock(nn.Module):
    """The convolutions of one basic block; its norms and gates come from :class:`HATResNet`.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of its output.
        stride: stride of the first convolution (2 halves the spatial size).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, 3, stride)
        self.conv2 = _conv(out_channels, out_channels, 3)
        self.shortcut: Optional[nn.Conv2d] = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = _conv(in_channels, out_channels, 1, stride)

    @property
    def n_norms(self) -> int:
        return 3 if self.shortcut is not None else 2

    def forward(self, h: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, norms: Sequence[nn.Module]) -> torch.Tensor:
        u = torch.relu(norms[0](self.conv1(h))) * a1.view(1, -1, 1, 1)
        v = norms[1](self.conv2(u))
        skip = h if self.shortcut is None else norms[2](self.shortcut(h))
        return torch.relu(v + skip) * a2.view(1, -1, 1, 1)


class HATResNet(HATModule):
    """The reduced ResNet-18 with HAT's gates on every convolution's channels and batch norm per task.

    The layout of :class:`~avalanche_ext.models.resnet.ResNetFeatures` (a 3x3 stem, four
    stages of basic blocks, global average pooling; 1.09 M shared weights at ``nf = 20``).
    Gated layers, in order: the stem, ``h = relu(bn(stem(x))) * a^0``; then in block ``k``
    its first convolution, ``u = relu(bn1(conv1(h))) * a^{2k+1}``, and its output,
    ``h = relu(bn2(conv2(u)) + shortcut(h)) * a^{2k+2}``, where the shortcut is the
    identity or a strided 1x1 convolution with batch norm.

    A weight is protected by the gates of the two channels it connects: ``conv1`` of block
    ``k`` by ``min(a^{2k+1}_i, a^{2k}_j)`` (its input is the previous block's output, or the
    stem's), ``conv2`` by ``min(a^{2k+2}_i, a^{2k+1}_j)``, the shortcut convolution by
    ``min(a^{2k+2}_i, a^{2k}_j)``. With saturated gates an old task's output does not move:
    every weight into a channel it uses from a channel it uses is frozen, a weight from a
    channel it does not use multiplies zeros, and the identity shortcut has no weight.

    Batch norm's running statistics move with every training batch and would drift old
    tasks whatever the gates hold, so every task has its own ``BatchNorm2d`` at each of the
    20 sites (affine parameters and running statistics), created with its embeddings and
    head; a task trains only its own. HAT was defined on the filters of a convolutional
    network (Serrà et al., 2018); the reduced ResNet-18 is GEM's (Lopez-Paz & Ranzato, 2017).

    Example:
        >>> net = HATResNet(in_channels=3, n_outputs=10)
        >>> net.add_task(0)
        >>> net(torch.zeros(4, 3, 32, 32), 0).shape
        torch.Size([4, 10])

    Args:
        in_channels: channels of the input images.
        n_outputs: units of each task's head.
        nf: base width; the stages have ``nf``, ``2 nf``, ``4 nf`` and ``8 nf`` channels
            (20 in GEM and A-GEM).
        blocks: blocks per stage (ResNet-18: two in each of four stages).
        s_max: the largest gate scale (paper: 400).

    Attributes:
        units: channels of each gated layer: the stem, then two per block.

    Raises:
        ValueError: ``in_channels`` or ``nf`` below 1, or not four stages of at least one block.
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: int,
        *,
        nf: int = 20,
        blocks: Sequence[int] = RESNET18_BLOCKS,
        s_max: float = 400.0,
    ) -> None:
        layout = [HATBlock(*spec) for spec in block_layout(in_channels, nf, blocks)]
        width = layout[-1].conv2.out_channels
        units = [nf]
        norm_channels = [nf]
        for b in layout:
            c = b.conv1.out_channels
            units += [c, c]
            norm_channels += [c] * b.n_norms
        super().__init__(units, n_outputs, width, s_max=s_max, norm_channels=norm_channels)
        self.stem = _conv(in_channels, nf, 3)
        self.blocks = nn.ModuleList(layout)
        self.out_features = width

    def connections(self) -> list[tuple[str, nn.Parameter, int, Optional[int]]]:
        out: list[tuple[str, nn.Parameter, int, Optional[int]]] = [("stem.weight", self.stem.weight, 0, None)]
        for k, b in enumerate(self.blocks):
            inp, mid, post = 2 * k, 2 * k + 1, 2 * k + 2
            out.append((f"blocks.{k}.conv1.weight", b.conv1.weight, mid, inp))
            out.append((f"blocks.{k}.conv2.weight", b.conv2.weight, post, mid))
            if b.shortcut is not None:
                out.append((f"blocks.{k}.shortcut.weight", b.shortcut.weight, post, inp))
        return out

    def features(self, x: torch.Tensor, gates: Sequence[torch.Tensor], norms: Optional[nn.ModuleList]) -> torch.Tensor:
        assert norms is not None
        h = torch.relu(norms[0](self.stem(x))) * gates[0].view(1, -1, 1, 1)
        site = 1
        for k, b in enumerate(self.blocks):
            h = b(h, gates[2 * k + 1], gates[2 * k + 2], norms[site:site + b.n_norms])
            site += b.n_norms
        return h.mean(dim=(2, 3))


def build_hat_network(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    arch: str = "mlp",
    hidden: int = 400,
    layers: int = 2,
    s_max: float = 400.0,
    dropout: float = 0.0,
) -> HATModule:
    """Build a HAT network from the same spec as :func:`~avalanche_ext.models.build_network`.

    Args:
        input_shape: ``(C, H, W)`` of one input.
        n_outputs: units of each task's head.
        arch: ``"mlp"`` (``layers`` gated linear layers of ``hidden`` units), ``"cnn"``
            (two gated convolutions of 32 and 64 channels, then one gated linear layer of
            ``hidden`` units, as the project's default CNN) or ``"resnet18"`` (the reduced
            ResNet-18 with a gate on every convolution's channels and batch norm per task,
            :class:`HATResNet`; ``hidden``, ``layers`` and
            ``dropout`` do not apply).
        hidden: width of the hidden layers / of the representation.
        layers: number of hidden layers of the MLP.
        s_max: the largest gate scale.
        dropout: dropout after each gate.
    """
    if hidden < 1 or layers < 1:
        raise ValueError(f"hidden and layers must be >= 1, got {hidden}, {layers}")
    if arch == "mlp":
        size = 1
        for d in input_shape:
            size *= int(d)
        mods: list[nn.Module] = []
        prev = size
        for _ in range(layers):
            mods.append(nn.Linear(prev, hidden))
            prev = hidden
        return HATNet(mods, n_outputs, s_max=s_max, dropout=dropout)
    if arch == "cnn":
        c = int(input_shape[0])
        mods = [nn.Conv2d(c, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1), nn.Linear(64 * 4, hidden)]
        posts: list[Optional[nn.Module]] = [nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2), None]
        return HATNet(mods, n_outputs, posts=posts, s_max=s_max, dropout=dropout)
    if arch == "resnet18":
        return HATResNet(int(input_shape[0]), n_outputs, s_max=s_max)
    raise ValueError(
        f"build_hat_network supports arch='mlp', 'cnn' or 'resnet18', not {arch!r}; for a network of your own "
        "pass its gated layers to HATNet, or subclass HATModule"
    )


__all__ = ["GATE_CUTOFF", "HATBlock", "HATModule", "HATNet", "HATResNet", "build_hat_network"]
