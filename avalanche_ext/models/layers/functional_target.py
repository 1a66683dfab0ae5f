"""A network run on weights given at call time: the target network of a hypernetwork.

:class:`FunctionalTarget` turns an ordinary ``nn.Module`` (an MLP, a small CNN, any module
tree of the supported layers) into a network that runs on given weights:
``target(x, weights, task)``. It exposes ``param_shapes`` (what a hypernetwork must
generate) and keeps batch-norm statistics per task.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch
from avalanche.models import DynamicModule
from torch import nn
from torch.func import functional_call

from ..common import described_modules

#: Layers without parameters or buffers: run as they are.
_STATELESS = (
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Identity,
    nn.Flatten, nn.Unflatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)
#: Layers whose parameters the hypernetwork generates.
_GENERATED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)
#: Batch norm: affine parameters generated, running statistics kept per task.
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
SUPPORTED_LAYERS: tuple[type, ...] = _STATELESS + _GENERATED + _BATCHNORM


class UnsupportedTargetError(ValueError):
    """The target network contains a layer the hypernetwork cannot generate."""


def check_target(module: nn.Module) -> None:
    """Raise :class:`UnsupportedTargetError` unless every layer of ``module`` is supported.

    Supported: ``Linear``, ``Conv1d/2d``, ``LayerNorm``, ``GroupNorm``, ``BatchNorm1d/2d``
    (statistics per task), activations, pooling, ``Flatten``, ``Dropout``, and any
    container whose ``forward`` only calls its children (``Sequential``, the networks of
    :func:`~avalanche_ext.models.build_network`).
    """
    for where, sub in described_modules(module):
        if isinstance(sub, DynamicModule):
            raise UnsupportedTargetError(
                f"{where} is an Avalanche DynamicModule; the hypernetwork already generates one set of "
                "weights (and so one head) per task: pass a single-head network, e.g. "
                "build_network(..., multihead=False)"
            )
        if isinstance(sub, SUPPORTED_LAYERS):
            if isinstance(sub, _BATCHNORM) and not sub.track_running_stats:
                raise UnsupportedTargetError(f"{where}: batch norm must track running statistics")
            continue
        has_own = any(True for _ in sub.named_parameters(recurse=False)) or any(
            True for _ in sub.named_buffers(recurse=False)
        )
        if has_own or not any(True for _ in sub.children()):
            what = "holds parameters or buffers of its own besides its submodules" if has_own and any(
                True for _ in sub.children()) else "is not a layer the hypernetwork can generate"
            raise UnsupportedTargetError(
                f"{where} {what}: build the target from supported layers "
                f"({', '.join(sorted({t.__name__ for t in SUPPORTED_LAYERS}))}) and containers of them that hold "
                "nothing else"
            )
    if not any(True for _ in module.parameters()):
        raise UnsupportedTargetError("the target network has no parameters to generate")


def _stats_prefix(task: int) -> str:
    return f"stats_t{int(task)}__"


class FunctionalTarget(nn.Module):
    """An ordinary network run on weights given at call time: ``target(x, weights, task)``.

    The network passed in is copied and kept outside the module tree, so its own
    parameters are neither trained nor saved; only per-task batch-norm statistics are
    state. ``param_shapes`` lists the shapes of the weights to pass, in the order of
    ``named_parameters()``.

    Args:
        network: the target network (see :func:`check_target` for the supported layers).

    Raises:
        UnsupportedTargetError: for an unsupported layer.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        check_target(network)
        template = copy.deepcopy(network).requires_grad_(False)
        object.__setattr__(self, "_template", template)
        self.param_names: list[str] = [n for n, _ in template.named_parameters()]
        self.param_shapes: list[tuple[int, ...]] = [tuple(p.shape) for _, p in template.named_parameters()]
        self._buffer_init = {n: b.detach().clone() for n, b in template.named_buffers()}
        self.buffer_names: list[str] = list(self._buffer_init)
        # an empty, unsaved buffer that follows .to(): a new task's statistics are created on its device
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def num_params(self) -> int:
        """Number of scalar weights the hypernetwork must generate."""
        return sum(math.prod(s) for s in self.param_shapes)

    @property
    def statistics_bytes(self) -> int:
        """Bytes of one task's batch-norm statistics (0 without batch norm)."""
        return sum(b.numel() * b.element_size() for b in self._buffer_init.values())

    @property
    def has_task_statistics(self) -> bool:
        """True when the network has batch norm (statistics kept per task)."""
        return bool(self.buffer_names)

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Cut a flat vector of ``num_params`` numbers into tensors of ``param_shapes``."""
        if flat.numel() < self.num_params:
            raise ValueError(f"need {self.num_params} weights, got {flat.numel()}")
        out, start = [], 0
        for shape in self.param_shapes:
            n = math.prod(shape)
            out.append(flat[start : start + n].view(shape))
            start += n
        return out

    def add_task(self, task: int) -> None:
        """Create fresh batch-norm statistics for ``task`` (no-op without batch norm)."""
        prefix = _stats_prefix(task)
        for name, init in self._buffer_init.items():
            key = prefix + name.replace(".", "__")
            if not hasattr(self, key):
                self.register_buffer(key, init.to(self._anchor.device, copy=True))

    def task_statistics(self, task: int) -> dict[str, torch.Tensor]:
        """The batch-norm buffers of ``task``, keyed by the network's buffer names."""
        prefix = _stats_prefix(task)
        try:
            return {name: getattr(self, prefix + name.replace(".", "__")) for name in self.buffer_names}
        except AttributeError:
            raise KeyError(f"no batch-norm statistics for task {task}; call add_task({task}) first") from None

    def forward(self, x: torch.Tensor, weights: Sequence[torch.Tensor], task: Optional[int] = None) -> torch.Tensor:
        """Run the network on ``x`` with ``weights`` (and ``task``'s batch-norm statistics)."""
        if len(weights) != len(self.param_names):
            raise ValueError(f"expected {len(self.param_names)} weight tensors, got {len(weights)}")
        tensors: dict[str, torch.Tensor] = dict(zip(self.param_names, weights))
        if self.buffer_names:
            if task is None:
                raise ValueError("this target network has batch norm: pass the task whose statistics to use")
            tensors.update(self.task_statistics(task))
        template = self._template
        if template.training != self.training:
            template.train(self.training)
        return functional_call(template, tensors, (x,))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        tasks = {int(k[len(prefix) + 7 :].split("__", 1)[0]) for k in state_dict
                 if k.startswith(prefix + "stats_t")}
        for task in sorted(tasks):
            self.add_task(task)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


__all__ = ["FunctionalTarget", "SUPPORTED_LAYERS", "UnsupportedTargetError", "check_target"]
