"""What Avalanche's PackNet needs to hold a ResNet: frozen norm layers, and convolutions without bias.

Avalanche's ``PackNetModel`` isolates each task's *weights* (iterative magnitude pruning,
then freezing), and refuses any norm layer: batch norm's running statistics and affine
parameters are shared by all tasks and would move under every later task, so the old
tasks' outputs would drift although their weights are frozen. :class:`PackNetNorm` wraps a
norm layer so that PackNet accepts it and old tasks keep their outputs: the first task
trains it like any layer, and when that task is committed (``freeze_pruned``) its
parameters stop receiving gradients and it stays in evaluation mode for good (the running
statistics of the first task are used by every task), as Piggyback does with its frozen
backbone.

Avalanche's wrappers of ``Linear`` and convolution layers also assume a bias (committing
the first task sets ``bias.requires_grad``), which ResNet convolutions (followed by batch
norm) lack, and a restored model trains its biases again (``requires_grad`` is not in a
state dict), so old tasks' outputs change. :class:`PackNetLayer` is the same weight
isolation without either defect. :func:`prepare_for_packnet` wraps the norm, linear and
convolution layers of a network, such as the reduced ResNet-18
(:mod:`avalanche_ext.models.resnet`), before ``PackNetModel`` wraps it.

Paper: Mallya & Lazebnik, *PackNet: Adding Multiple Tasks to a Single Network by
Iterative Pruning*, CVPR 2018, https://arxiv.org/abs/1711.05769.

Example:
    >>> from avalanche.models.packnet import PackNetModel
    >>> from avalanche_ext.models import build_network
    >>> net = build_network((3, 32, 32), 2, arch="resnet18")
    >>> prepare_for_packnet(net)
    41
    >>> model = PackNetModel(net)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from avalanche.models.packnet import PackNetModule, WeightAndBiasPackNetModule
from torch import nn

#: The layers :func:`wrap_norm_layers` wraps.
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


class PackNetNorm(PackNetModule):
    """A norm layer that PackNet trains with the first task and freezes when that task is committed.

    Args:
        norm: the norm layer (``BatchNorm2d``, ``GroupNorm``...), used unchanged.

    Attributes:
        frozen: whether the first task was committed (its parameters get no gradient and
            its running statistics no update).
    """

    def __init__(self, norm: nn.Module):
        super().__init__()
        if not isinstance(norm, NORM_TYPES):
            raise TypeError(f"PackNetNorm wraps a norm layer, not {type(norm).__name__}")
        self.norm = norm
        self.register_load_state_dict_post_hook(_freeze_after_load)

    @property
    def frozen(self) -> bool:
        return self.task_count > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)

    def train(self, mode: bool = True) -> "PackNetNorm":
        super().train(mode)
        if self.frozen:
            self.norm.eval()
        return self

    def _freeze(self) -> None:
        for p in self.norm.parameters():
            p.requires_grad_(False)
        self.norm.eval()

    def _prune(self, prune_proportion: float) -> None:
        """Norm parameters are shared, never pruned."""

    def _freeze_pruned(self) -> None:
        self._freeze()

    def _activate_task(self, task_id: int) -> None:
        """Every task uses the same (frozen after the first task) norm layer."""


class PackNetLayer(WeightAndBiasPackNetModule):
    """PackNet's weight isolation for an ``nn.Linear`` or ``nn.Conv1d/2d/3d``, with or without bias.

    The same isolation as Avalanche's own wrappers (the visible weights of the active task;
    gradients only to the weights the current task owns; the bias frozen with the first
    task), plus: a layer without bias is accepted, and a restored layer keeps its bias
    frozen (``requires_grad`` is not part of a state dict).

    Args:
        layer: the layer, used with its visible weights only.
    """

    def __init__(self, layer: nn.Module):
        if not isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)) or isinstance(
                layer, nn.modules.conv._ConvTransposeNd):
            raise TypeError(f"PackNetLayer wraps nn.Linear or nn.ConvNd, not {type(layer).__name__}")
        super().__init__(layer)
        self.has_bias = layer.bias is not None
        self.register_load_state_dict_post_hook(_freeze_after_load)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.wrappee, nn.Linear):
            return F.linear(x, self.available_weights(), self.wrappee.bias)
        return self.wrappee._conv_forward(x, self.available_weights(), self.wrappee.bias)

    def _freeze(self) -> None:
        if self.has_bias:
            self.wrappee.bias.requires_grad_(False)


def _freeze_after_load(module: nn.Module, incompatible_keys: Any) -> None:
    if module.task_count > 0:  # the first task was committed
        module._freeze()


def prepare_for_packnet(module: nn.Module) -> int:
    """Wrap, in place, every norm layer (:class:`PackNetNorm`), ``nn.Linear`` and convolution
    (:class:`PackNetLayer`) under ``module``; returns how many layers were wrapped.

    Call it before ``avalanche.models.packnet.PackNetModel(module)``, which wraps the rest.
    """
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, NORM_TYPES):
            setattr(module, name, PackNetNorm(child))
            count += 1
        elif type(child) in (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d):
            setattr(module, name, PackNetLayer(child))
            count += 1
        elif not isinstance(child, PackNetModule):
            count += prepare_for_packnet(child)
    return count


__all__ = ["NORM_TYPES", "PackNetLayer", "PackNetNorm", "prepare_for_packnet"]
