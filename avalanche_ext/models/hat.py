"""Networks for Hard Attention to the Task (HAT): gated layers, task embeddings, one head per task.

Every gated layer ``l`` (an ``nn.Linear`` or ``nn.Conv2d``) multiplies its activations by a
per-task attention vector $a^l_t = \\sigma(s\\, e^l_t)$, where $e^l_t$ is a learned task
embedding with one value per unit (per channel for a convolution) and $s$ a scale. During
training the scale is annealed within each epoch from $1/s_{max}$ to $s_{max}$ (by
:class:`~avalanche_ext.plugins.hat.HATPlugin`, which sets :attr:`HATNet.s`); in evaluation
the network always uses $s_{max}$, so the gates are (almost) binary. Each task has its
own head; its input is the last gated layer.

Serrà, Surís, Miron, Karatzoglou, *Overcoming catastrophic forgetting with hard attention
to the task*, ICML 2018, `arXiv:1801.01423 <https://arxiv.org/abs/1801.01423>`_.

Example:
    >>> net = build_hat_network((1, 28, 28), n_outputs=2, hidden=400, layers=2)
    >>> net.add_task(0)
    >>> net(torch.zeros(4, 1, 28, 28), 0).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from avalanche.models import MultiTaskModule

from ..functional.hat import weight_mask


def _units(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels
    raise TypeError(f"HAT gates nn.Linear and nn.Conv2d layers, not {type(layer).__name__}")


class HATNet(MultiTaskModule):
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

    Attributes:
        s: the current gate scale in training mode (set by the plugin); evaluation
            uses ``s_max``.
        last_gates: ``{task: [a^1_t, ..., a^L_t]}`` of the last training forward pass,
            with gradient, for the attention regularizer.
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
        super().__init__()
        if not layers:
            raise ValueError("HATNet needs at least one gated layer")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        if s_max <= 1:
            raise ValueError(f"s_max must be > 1, got {s_max}")
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
        self.layers = nn.ModuleList(layers)
        self.posts = nn.ModuleList([p if p is not None else nn.Identity() for p in posts])
        self.units: list[int] = units
        self.n_outputs = int(n_outputs)
        self.head_in = units[-1]
        self.s_max = float(s_max)
        self.s = float(s_max)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.embeddings = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.max_class_label = self.n_outputs
        self.last_gates: dict[int, list[torch.Tensor]] = {}
        self.register_load_state_dict_pre_hook(_create_tasks_before_load)

    # ---- tasks -------------------------------------------------------------------------
    @property
    def tasks(self) -> list[int]:
        """Task labels that have an embedding and a head."""
        return sorted(int(t) for t in self.embeddings)

    def add_task(self, task: int) -> None:
        """Create the embeddings (N(0, 1), as the paper) and the head of ``task`` if missing."""
        key = str(int(task))
        if key in self.embeddings:
            return
        device = next(self.layers.parameters()).device
        self.embeddings[key] = nn.ParameterList([nn.Parameter(torch.randn(u, device=device)) for u in self.units])
        self.heads[key] = nn.Linear(self.head_in, self.n_outputs).to(device)

    def adaptation(self, experience: Any) -> None:
        """Add the embeddings and head of every task label of ``experience``."""
        super().adaptation(experience)
        for t in set(int(t) for t in experience.task_labels):
            self.add_task(t)

    def task_embeddings(self, task: int) -> list[nn.Parameter]:
        """The embeddings $e^l_t$ of ``task``, one per gated layer."""
        key = str(int(task))
        if key not in self.embeddings:
            raise KeyError(f"task {task} has no embedding yet; known tasks: {self.tasks}")
        return list(self.embeddings[key])

    def gates(self, task: int, s: Optional[float] = None) -> list[torch.Tensor]:
        """$a^l_t = \\sigma(s\\, e^l_t)$ for every gated layer (``s`` defaults to ``s_max``)."""
        s = self.s_max if s is None else s
        return [torch.sigmoid(s * e) for e in self.task_embeddings(task)]

    # ---- forward -----------------------------------------------------------------------
    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        task = int(task_label)
        gates = self.gates(task, self.s if self.training else self.s_max)
        if self.training:
            self.last_gates[task] = gates
        h = x
        for layer, post, g in zip(self.layers, self.posts, gates):
            if isinstance(layer, nn.Linear) and h.dim() > 2:
                h = h.flatten(1)
            h = torch.relu(layer(h))
            h = h * g.view(1, -1, *((1,) * (h.dim() - 2)))
            h = post(self.dropout(h))
        if h.dim() > 2:
            h = h.flatten(1)
        return self.heads[str(task)](h)

    # ---- what the gates protect --------------------------------------------------------
    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The shared weights and biases whose gradients HAT masks, by name."""
        return {f"layers.{n}": p for n, p in self.layers.named_parameters()}

    def parameter_masks(self, gates: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """For each shared parameter, $\\min(a^l_i, a^{l-1}_j)$ of the units it connects.

        Args:
            gates: one attention vector per gated layer (e.g. the cumulative attention).

        Returns:
            ``{name: mask}`` with the shape of each parameter of :meth:`protected_parameters`.
        """
        if len(gates) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} gate vectors, got {len(gates)}")
        masks: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            post = gates[i].detach()
            pre = None
            if i > 0:
                pre = gates[i - 1].detach()
                if isinstance(layer, nn.Linear) and layer.in_features != pre.numel():
                    pre = pre.repeat_interleave(layer.in_features // pre.numel())
            masks[f"layers.{i}.weight"] = weight_mask(post, pre, layer.weight.shape)
            if layer.bias is not None:
                masks[f"layers.{i}.bias"] = post.clone()
        return masks

    # ---- memory ------------------------------------------------------------------------
    def memory_report(self) -> dict[str, int]:
        """What the network stores, in bytes (float32).

        Every task adds its embeddings (one value per unit) and its head; the shared gated
        layers are stored once. ``attention_bytes`` is the cumulative attention
        :class:`~avalanche_ext.plugins.HATPlugin` keeps (one value per unit).
        """
        size = torch.finfo(torch.float32).bits // 8
        emb = sum(self.units) * size
        head = (self.head_in * self.n_outputs + self.n_outputs) * size
        return {
            "bytes_per_task": emb + head,
            "embedding_bytes_per_task": emb,
            "head_bytes_per_task": head,
            "shared_bytes": sum(p.numel() for p in self.layers.parameters()) * size,
            "attention_bytes": emb,
        }


def _create_tasks_before_load(module: HATNet, state_dict: dict, prefix: str, *args: Any) -> None:
    """Create the tasks a state dict holds, so a fresh network can load it."""
    for key in state_dict:
        if key.startswith(prefix + "embeddings."):
            module.add_task(int(key[len(prefix) + len("embeddings."):].split(".")[0]))


def build_hat_network(
    input_shape: Sequence[int],
    n_outputs: int,
    *,
    arch: str = "mlp",
    hidden: int = 400,
    layers: int = 2,
    s_max: float = 400.0,
    dropout: float = 0.0,
) -> HATNet:
    """Build a HAT network from the same spec as :func:`~avalanche_ext.models.build_network`.

    Args:
        input_shape: ``(C, H, W)`` of one input.
        n_outputs: units of each task's head.
        arch: ``"mlp"`` (``layers`` gated linear layers of ``hidden`` units) or ``"cnn"``
            (two gated convolutions of 32 and 64 channels, then one gated linear layer of
            ``hidden`` units, as the project's default CNN).
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
    raise ValueError(
        f"build_hat_network supports arch='mlp' or 'cnn', not {arch!r}: HAT gates the units of a plain stack of "
        "layers (no residual connections, no batch norm); for a network of your own pass its gated layers to HATNet"
    )


__all__ = ["HATNet", "build_hat_network"]
