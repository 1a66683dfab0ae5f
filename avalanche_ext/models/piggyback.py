"""Piggyback: binary masks per task over a frozen backbone, plus one head per task.

Piggyback (Mallya, Davis, Lazebnik, "Piggyback: Adapting a Single Network to Multiple
Tasks by Learning to Mask Weights", ECCV 2018, arXiv:1801.06519) never changes the
weights $W$ of a trained backbone. For each new task $t$ it learns a real-valued mask
$m_t$ (same shape as $W$, initialised to ``mask_scale``) and a new head, and runs the
backbone with $W \\odot \\mathbb{1}[m_t > \\tau]$. The threshold is bypassed in the
backward pass (straight-through), so $\\nabla_{m_t} L = \\nabla_{\\hat W} L \\odot W$.
When the task is learned only the binary mask is kept: one bit per masked weight.

Since no pretrained weights are available offline, the backbone can be trained on the
first task (that task then uses the unmasked backbone: a mask of ones costs nothing) and
is frozen afterwards; or a backbone trained elsewhere is passed with ``pretrained=True``.

Scenarios: task-incremental only (the task label selects the mask and the head).

Example:
    >>> from avalanche_ext.models import build_network
    >>> net = build_network((1, 8, 8), 2, hidden=64)
    >>> model = PiggybackNet(net.features, feature_size=64, n_outputs=2)
    >>> model.add_task(0); model.consolidate(0)     # task 0 trained the backbone
    >>> model.add_task(1)                           # task 1 learns a mask over it
    >>> model(torch.zeros(3, 1, 8, 8), 1).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import copy as _copy
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from avalanche.models import MultiTaskModule
from torch import nn

from avalanche_ext.functional.piggyback import binarize_ste, pack_bits, unpack_bits
from avalanche_ext.models.ensemble import forward_by_task

#: Parameterised layers Piggyback leaves unmasked but frozen (and in eval mode once frozen).
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)


class PiggybackLayer(nn.Module):
    """A layer whose weight can be multiplied by a per-task binary mask.

    ``weight`` and ``bias`` are the backbone's (frozen by :meth:`freeze`). Masks being learned
    are real-valued parameters in ``masks[str(t)]``; learned masks are 1-bit buffers
    ``bits_<t>`` (see :meth:`pack_mask`). ``task`` selects the mask of the next forward pass
    (``None``: the unmasked weight).

    Args:
        weight: the trained weight (copied).
        bias: the trained bias (copied) or ``None``.
        threshold: $\\tau$ of $\\mathbb{1}[m > \\tau]$.
        mask_scale: initial value of every real-valued mask entry (above ``threshold``, so a
            new mask starts as all ones: the backbone itself).
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], *, threshold: float = 5e-3,
                 mask_scale: float = 1e-2):
        super().__init__()
        _check_mask_settings(threshold, mask_scale)
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.threshold = float(threshold)
        self.mask_scale = float(mask_scale)
        self.masks = nn.ParameterDict()
        self.packed: list[int] = []
        self.frozen = False
        self.task: Optional[int] = None

    def _op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_mask(self, task: int) -> nn.Parameter:
        """Start learning a real-valued mask for ``task`` (all entries ``mask_scale``)."""
        if str(task) in self.masks or task in self.packed:
            raise ValueError(f"task {task} already has a mask")
        self.masks[str(task)] = nn.Parameter(torch.full_like(self.weight, self.mask_scale, requires_grad=True))
        return self.masks[str(task)]

    def pack_mask(self, task: int) -> None:
        """Replace ``task``'s real-valued mask by its binarised, 1-bit packed form (final)."""
        if str(task) not in self.masks:
            raise KeyError(f"task {task} has no mask being learned")
        real = self.masks[str(task)].detach()
        bits = pack_bits(real > self.threshold).to(real.device)
        del self.masks[str(task)]
        self.register_buffer(f"bits_{task}", bits)
        self.packed.append(task)

    def binary_mask(self, task: int) -> torch.Tensor:
        """The 0/1 mask of ``task`` (with the straight-through gradient while it is learned)."""
        if str(task) in self.masks:
            return binarize_ste(self.masks[str(task)], self.threshold)
        if task in self.packed:
            return unpack_bits(getattr(self, f"bits_{task}"), self.weight.shape, self.weight.dtype)
        raise KeyError(f"task {task} has no mask in this layer")

    def freeze(self) -> None:
        """Stop gradients to the backbone weight and bias for good."""
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.frozen = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.task is None else self.weight * self.binary_mask(self.task)
        return self._op(x, weight)

    def get_extra_state(self) -> dict[str, Any]:
        return {"learning": sorted(int(k) for k in self.masks), "packed": list(self.packed), "frozen": self.frozen}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state["frozen"]:
            self.freeze()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: D401 - torch hook
        # Build the masks the saved layer had, so that the ordinary loading fills them in.
        state = state_dict.get(prefix + "_extra_state")
        if state is not None:
            for task in state["learning"]:
                if str(task) not in self.masks and task not in self.packed:
                    self.add_mask(task)
            for task in state["packed"]:
                if task not in self.packed:
                    if str(task) in self.masks:
                        del self.masks[str(task)]
                    numel = (self.weight.numel() + 7) // 8
                    self.register_buffer(f"bits_{task}", torch.zeros(numel, dtype=torch.uint8, device=self.weight.device))
                    self.packed.append(task)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class PiggybackLinear(PiggybackLayer):
    """:class:`PiggybackLayer` doing ``F.linear``. Build it with :meth:`wrap`."""

    def _op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight, self.bias)

    @classmethod
    def wrap(cls, layer: nn.Linear, **kwargs: Any) -> "PiggybackLinear":
        """A masked copy of a trained ``nn.Linear``."""
        return cls(layer.weight, layer.bias, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}, tasks={self._task_list()}"

    def _task_list(self) -> list[int]:
        return sorted([int(k) for k in self.masks] + self.packed)


class PiggybackConv2d(PiggybackLayer):
    """:class:`PiggybackLayer` doing ``F.conv2d`` (zero padding only). Build it with :meth:`wrap`."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], *, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, **kwargs: Any):
        super().__init__(weight, bias, **kwargs)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def _op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    @classmethod
    def wrap(cls, layer: nn.Conv2d, **kwargs: Any) -> "PiggybackConv2d":
        """A masked copy of a trained ``nn.Conv2d``."""
        if layer.padding_mode != "zeros":
            raise ValueError(f"Piggyback masks Conv2d with zero padding only, not padding_mode={layer.padding_mode!r}")
        return cls(layer.weight, layer.bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                   groups=layer.groups, **kwargs)

    def extra_repr(self) -> str:
        return f"weight={tuple(self.weight.shape)}, stride={self.stride}, padding={self.padding}"


def _check_mask_settings(threshold: float, mask_scale: float) -> None:
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if not mask_scale > threshold:
        raise ValueError(f"mask_scale must be > threshold (a new mask must start as all ones), got "
                         f"mask_scale={mask_scale}, threshold={threshold}")


def mask_layers(module: nn.Module, *, threshold: float = 5e-3, mask_scale: float = 1e-2) -> int:
    """Replace, in place, every ``nn.Linear`` / ``nn.Conv2d`` of ``module`` by a masked copy.

    Returns the number of layers replaced. Raises ``ValueError`` for any other layer that
    has parameters (norm layers excepted: they stay shared and are frozen with the backbone).
    """
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, PiggybackLayer):
            raise ValueError(f"{name} is already masked")
        if type(child) is nn.Linear:
            setattr(module, name, PiggybackLinear.wrap(child, threshold=threshold, mask_scale=mask_scale))
            count += 1
        elif type(child) is nn.Conv2d:
            setattr(module, name, PiggybackConv2d.wrap(child, threshold=threshold, mask_scale=mask_scale))
            count += 1
        elif isinstance(child, NORM_LAYERS):
            continue
        elif any(True for _ in child.parameters(recurse=False)):
            raise ValueError(
                f"Piggyback cannot mask layer {name!r} ({type(child).__name__}): it masks nn.Linear and nn.Conv2d "
                f"and freezes norm layers; build the backbone from those"
            )
        else:
            count += mask_layers(child, threshold=threshold, mask_scale=mask_scale)
    return count


class PiggybackNet(MultiTaskModule):
    """A backbone shared by all tasks through per-task binary weight masks, and one head per task.

    Args:
        backbone: a module mapping inputs to ``feature_size`` features, built from
            ``nn.Linear`` / ``nn.Conv2d`` (masked) plus parameter-free layers and norm layers.
        feature_size: width of the backbone's output.
        n_outputs: units of each task's head.
        threshold: $\\tau$ (paper: 5e-3).
        mask_scale: initial value of the real-valued masks (paper: 1e-2).
        pretrained: the backbone is already trained: freeze it now, every task learns a mask.
            Otherwise the first task trains the backbone and uses it unmasked.
        copy: wrap a deep copy of ``backbone`` (leaves the caller's module untouched).

    A task the model has not learned yields all-zero logits.
    """

    def __init__(self, backbone: nn.Module, feature_size: int, n_outputs: int, *, threshold: float = 5e-3,
                 mask_scale: float = 1e-2, pretrained: bool = False, copy: bool = True):
        super().__init__()
        _check_mask_settings(threshold, mask_scale)
        if feature_size < 1 or n_outputs < 1:
            raise ValueError(f"feature_size and n_outputs must be >= 1, got {feature_size}, {n_outputs}")
        backbone = _copy.deepcopy(backbone) if copy else backbone
        if isinstance(backbone, (nn.Linear, nn.Conv2d)):
            backbone = nn.Sequential(backbone)
        if mask_layers(backbone, threshold=threshold, mask_scale=mask_scale) == 0:
            raise ValueError("the backbone has no nn.Linear or nn.Conv2d layer to mask")
        self.backbone = backbone
        self.heads = nn.ModuleDict()
        self.feature_size, self.n_outputs = int(feature_size), int(n_outputs)
        self.threshold, self.mask_scale = float(threshold), float(mask_scale)
        self.dense_tasks: list[int] = []
        self.learned: list[int] = []
        self.frozen = False
        if pretrained:
            self.freeze_backbone()

    # -- structure ---------------------------------------------------------------------------
    def masked_layers(self) -> list[PiggybackLayer]:
        return [m for m in self.backbone.modules() if isinstance(m, PiggybackLayer)]

    def backbone_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The shared weights (everything in the backbone except the masks)."""
        for name, p in self.backbone.named_parameters():
            if ".masks." not in f".{name}":
                yield name, p
        for name, b in self.backbone.named_buffers():
            if not name.rsplit(".", 1)[-1].startswith("bits_"):
                yield name, b

    @property
    def tasks(self) -> list[int]:
        return sorted(int(k) for k in self.heads)

    def _new_head(self) -> nn.Linear:
        device = self.masked_layers()[0].weight.device
        return nn.Linear(self.feature_size, self.n_outputs).to(device)

    def add_task(self, task: int) -> None:
        """Add a head for ``task`` and, once the backbone is frozen, a mask in every layer.

        Before the backbone is frozen, ``task`` trains the backbone itself (dense task).
        """
        task = int(task)
        if str(task) in self.heads:
            return
        if not self.frozen and self.dense_tasks:
            raise ValueError(
                f"task {self.dense_tasks[0]} is still training the backbone: call consolidate({self.dense_tasks[0]}) "
                f"(PiggybackPlugin does it after each experience) before adding task {task}"
            )
        if self.frozen:
            for layer in self.masked_layers():
                layer.add_mask(task)
        else:
            self.dense_tasks.append(task)
        self.heads[str(task)] = self._new_head()

    def consolidate(self, task: int) -> None:
        """Make ``task`` final: freeze the backbone (dense task) or pack its masks; freeze its head."""
        task = int(task)
        if str(task) not in self.heads:
            raise KeyError(f"task {task} is unknown")
        if task in self.learned:
            return
        if task in self.dense_tasks:
            self.freeze_backbone()
        else:
            for layer in self.masked_layers():
                layer.pack_mask(task)
        self.heads[str(task)].requires_grad_(False)
        self.learned.append(task)

    def freeze_backbone(self) -> None:
        """No gradient ever reaches the shared weights again; norm layers stay in eval mode."""
        for module in self.backbone.modules():
            if isinstance(module, PiggybackLayer):
                module.freeze()
            else:
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
        self.frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> "PiggybackNet":
        super().train(mode)
        if self.frozen:
            for module in self.backbone.modules():
                if isinstance(module, NORM_LAYERS):
                    module.eval()
        return self

    def adaptation(self, experience: Any) -> None:
        super().adaptation(experience)
        if self.training:
            for task in experience.task_labels:
                self.add_task(int(task))

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, task_labels: Any) -> torch.Tensor:  # type: ignore[override]
        """Logits of width ``n_outputs``; ``task_labels`` is an int or one label per row."""
        if task_labels is None:
            raise ValueError("PiggybackNet needs task labels: they select the mask and the head")
        return forward_by_task(self, x, task_labels, self.n_outputs)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        task = int(task_label)
        if str(task) not in self.heads:
            return x.new_zeros(x.shape[0], self.n_outputs)
        layers = self.masked_layers()
        selected = None if task in self.dense_tasks else task
        for layer in layers:
            layer.task = selected
        try:
            return self.heads[str(task)](self.backbone(x))
        finally:
            for layer in layers:
                layer.task = None

    # -- memory ------------------------------------------------------------------------------
    def mask_bytes_per_task(self) -> int:
        """Bytes of one learned task's binary masks (1 bit per masked weight, per layer rounded up)."""
        return sum((layer.weight.numel() + 7) // 8 for layer in self.masked_layers())

    def head_bytes(self) -> int:
        """Bytes of one task's head."""
        return (self.feature_size + 1) * self.n_outputs * self.masked_layers()[0].weight.element_size()

    def backbone_bytes(self) -> int:
        """Bytes of the shared backbone weights."""
        return sum(t.numel() * t.element_size() for _, t in self.backbone_tensors())

    def task_bytes(self, task: int) -> int:
        """Bytes stored for ``task`` now: its packed masks (none for the dense task) plus its head."""
        if str(task) not in self.heads:
            raise KeyError(f"task {task} is unknown")
        masks = 0
        for layer in self.masked_layers():
            if task in layer.packed:
                masks += getattr(layer, f"bits_{task}").numel()
            elif str(task) in layer.masks:
                masks += layer.masks[str(task)].numel() * layer.masks[str(task)].element_size()
        head = sum(p.numel() * p.element_size() for p in self.heads[str(task)].parameters())
        return masks + head

    def memory_params(self) -> dict[str, int]:
        """Memory figures worth logging with a run (bytes)."""
        return {
            "piggyback.backbone_bytes": self.backbone_bytes(),
            "piggyback.mask_bytes_per_task": self.mask_bytes_per_task(),
            "piggyback.head_bytes_per_task": self.head_bytes(),
            "piggyback.masked_weights": sum(layer.weight.numel() for layer in self.masked_layers()),
        }

    # -- state -------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "dense": list(self.dense_tasks), "learned": list(self.learned),
                "frozen": self.frozen}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.dense_tasks = list(state["dense"])
        self.learned = list(state["learned"])
        if state["frozen"]:
            self.freeze_backbone()
        for task in self.learned:
            self.heads[str(task)].requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: D401 - torch hook
        state = state_dict.get(prefix + "_extra_state")
        if state is not None:
            for task in state["tasks"]:
                if str(task) not in self.heads:
                    self.heads[str(task)] = self._new_head()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


__all__ = ["PiggybackConv2d", "PiggybackLayer", "PiggybackLinear", "PiggybackNet", "mask_layers"]
