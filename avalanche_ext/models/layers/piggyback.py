"""Piggyback's masked layers: a trained weight times a per-task binary mask.

A :class:`PiggybackLayer` keeps the backbone's trained weight $W$ and, per task $t$, a
mask: real-valued $m_t$ while the task is learned (used through
$\\mathbb{1}[m_t > \\tau]$ with a straight-through gradient), one bit per weight once it
is final. :func:`mask_layers` turns every ``nn.Linear`` / ``nn.Conv2d`` of a backbone into
one; :class:`~avalanche_ext.models.PiggybackNet` drives them task by task.

Paper: Mallya, Davis, Lazebnik, "Piggyback: Adapting a Single Network to Multiple Tasks by
Learning to Mask Weights", ECCV 2018, arXiv:1801.06519.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...functional.bits import pack_bits, unpack_bits
from ...functional.piggyback import binarize_ste

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
        check_mask_settings(threshold, mask_scale)
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
        bits = pack_bits(real > self.threshold)
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


def check_mask_settings(threshold: float, mask_scale: float) -> None:
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


__all__ = [
    "NORM_LAYERS", "PiggybackConv2d", "PiggybackLayer", "PiggybackLinear", "check_mask_settings", "mask_layers",
]
