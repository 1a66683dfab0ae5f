"""Supermask networks: fixed random signed-constant weights, one learned mask per task.

A :class:`SupSupNet` is a flat stack of layers. Its :class:`MaskedLinear` and
:class:`MaskedConv2d` layers (in :mod:`avalanche_ext.models.layers.supermask`) hold a *fixed* weight ``W`` (a buffer, never trained:
``W_ij = +-sqrt(2 / fan_in)`` with random signs) and one trainable score tensor ``S`` for
the task being learned. The effective weight of task ``t`` is ``W * M_t`` with the binary
mask ``M_t`` taken from ``S`` (threshold ``S >= 0`` or top-k on ``|S|``, with a
straight-through gradient). When a task ends its mask is *frozen*: stored with one bit
per weight, and the scores are re-initialised for the next task. Frozen masks are buffers,
so no optimizer, weight decay or momentum can ever change them: a learned task's outputs
are exactly unchanged by later tasks. Batch norm, where present, is non-affine and keeps
its running statistics per task (:class:`TaskBatchNorm`).

Routes through the network (``forward(x, task)``):

* ``task`` an ``int`` ``i``: frozen mask ``i``, or the live scores when
  ``i == num_masks`` (the task being learned).
* ``task`` a ``LongTensor`` of shape ``(B,)``: one route per sample.
* :meth:`SupSupNet.superpose` with weights ``alpha`` of shape ``(k,)`` (one mixture
  ``sum_i alpha_i M_i`` for the batch) or ``(B, k)`` (one per sample): the superposition
  used for task inference.

Build one from an ordinary network with :func:`build_supsup_network`.

Paper: Wortsman et al., "Supermasks in Superposition", NeurIPS 2020,
https://arxiv.org/abs/2006.14769.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..functional.supsup import MaskMode
from .layers.supermask import MaskedConv2d, MaskedLayer, MaskedLinear, Route, TaskBatchNorm, check_mask_args


class UnsupportedLayerError(ValueError):
    """A layer that :func:`build_supsup_network` cannot turn into a supermask layer."""


class SupSupNet(nn.Module):
    """A flat stack of supermask layers and parameter-free layers; see the module docstring.

    Example:
        >>> from torch import nn
        >>> net = build_supsup_network(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
        >>> slot = net.start_task()          # train net.parameters() (the scores) on task 0 ...
        >>> _ = net.freeze_task()            # ... then keep its mask: task 0 is now fixed
        >>> net(torch.zeros(2, 1, 8, 8), task=0).shape
        torch.Size([2, 10])
    """

    def __init__(self, layers: Iterable[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        if not any(isinstance(m, MaskedLayer) for m in self.layers):
            raise ValueError("a SupSupNet needs at least one MaskedLinear or MaskedConv2d layer")
        self.register_buffer("n_frozen", torch.zeros((), dtype=torch.long))
        self._route: Optional[Route] = None

    @property
    def num_masks(self) -> int:
        """Number of frozen (learned) task masks."""
        return int(self.n_frozen)

    @property
    def masked_layers(self) -> list[MaskedLayer]:
        return [m for m in self.layers if isinstance(m, MaskedLayer)]

    @property
    def norm_layers(self) -> list[TaskBatchNorm]:
        return [m for m in self.layers if isinstance(m, TaskBatchNorm)]

    # ----- task life cycle ------------------------------------------------------
    def start_task(self) -> int:
        """Prepare the live slot ``num_masks`` for a new task: fresh scores and fresh BN statistics."""
        slot = self.num_masks
        for m in self.masked_layers:
            m.reset_scores(slot)
        for bn in self.norm_layers:
            bn.reset(slot)
        return slot

    def freeze_task(self) -> int:
        """Freeze the live scores into mask ``num_masks``; return its index."""
        slot = self.num_masks
        for m in self.masked_layers:
            if m.freeze() != slot:
                raise RuntimeError("masked layers disagree on the number of frozen masks")
        for bn in self.norm_layers:
            bn.ensure(slot + 1)
        self.n_frozen += 1
        return slot

    # ----- forward ----------------------------------------------------------------
    def use_task(self, task: Optional[Route]) -> None:
        """Route of the next calls to ``forward(x)`` without a ``task`` argument."""
        self._route = task

    def _check_route(self, task: int) -> None:
        if not 0 <= task <= self.num_masks:
            raise IndexError(f"task slot {task} does not exist: {self.num_masks} frozen mask(s), "
                             f"live slot {self.num_masks}")

    def _run(self, x: Tensor, route: Route) -> Tensor:
        live = isinstance(route, int) and route == self.num_masks
        for layer in self.layers:
            if isinstance(layer, MaskedLayer):
                x = layer(x, route)
            elif isinstance(layer, TaskBatchNorm):
                x = layer(x, route, live)
            else:
                x = layer(x)
        return x

    def forward(self, x: Tensor, task: Optional[Route] = None) -> Tensor:
        """Logits of ``x`` through one mask per sample.

        Args:
            x: a batch of inputs.
            task: an ``int`` slot, a ``(B,)`` tensor of slots, or ``None`` for the route set by
                :meth:`use_task`.
        """
        route = self._route if task is None else task
        if route is None:
            raise RuntimeError("SupSupNet: no task given; pass task=... or call use_task() "
                               "(SupSupPlugin does this for you)")
        if isinstance(route, Tensor) and route.dtype in (torch.int64, torch.int32) and route.dim() == 1:
            slots = route.to(x.device)
            uniq = torch.unique(slots)
            if len(uniq) == 1:
                route = int(uniq[0])
            else:
                out: Optional[Tensor] = None
                for t in uniq.tolist():
                    self._check_route(t)
                    idx = (slots == t).nonzero(as_tuple=True)[0]
                    y = self._run(x[idx], t)
                    if out is None:
                        out = y.new_empty((x.shape[0], *y.shape[1:]))
                    out[idx] = y
                return out  # type: ignore[return-value]
        if isinstance(route, Tensor) and route.dim() == 0:
            route = int(route)
        if isinstance(route, int):
            self._check_route(route)
        return self._run(x, route)

    def superpose(self, x: Tensor, alphas: Tensor) -> Tensor:
        """Logits under ``sum_i alpha_i M_i`` (``alphas``: ``(k,)`` or ``(B, k)``, ``k = num_masks``)."""
        if self.num_masks == 0:
            raise RuntimeError("no frozen mask to superpose yet")
        if alphas.shape[-1] != self.num_masks:
            raise ValueError(f"alphas has {alphas.shape[-1]} entries, expected {self.num_masks}")
        return self._run(x, alphas.float())

    # ----- memory -------------------------------------------------------------------
    def memory_report(self) -> dict[str, Union[int, float]]:
        """What the model stores, in bytes: per task (masks, BN statistics) and shared.

        ``compression_vs_float32`` is how many times smaller a task's masks and statistics
        are than a float32 copy of the masked weights.
        """
        n_weights = sum(math.prod(m.shape) for m in self.masked_layers)
        mask_bytes = sum(m.mask_bytes() for m in self.masked_layers)
        bn_bytes = sum(bn.slot_bytes() for bn in self.norm_layers)
        return {
            "mask_bytes_per_task": mask_bytes,
            "bn_bytes_per_task": bn_bytes,
            "bytes_per_task": mask_bytes + bn_bytes,
            "float32_bytes_per_task_equivalent": 4 * n_weights,
            "compression_vs_float32": round(4 * n_weights / max(mask_bytes + bn_bytes, 1), 2),
            "shared_weight_bytes": 4 * n_weights,
            "score_bytes": 4 * n_weights,
            "n_masked_weights": n_weights,
        }


# ----- builder ------------------------------------------------------------------------------
_PARAMETER_FREE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Flatten, nn.Identity,
                   nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout)
SUPPORTED_LAYERS = ("Linear, Conv2d (groups=1, zero padding), BatchNorm1d/2d (made non-affine and per task), "
                    "and the parameter-free " + ", ".join(c.__name__ for c in _PARAMETER_FREE))


def _flatten(spec: Any, prefix: str = "") -> list[tuple[str, nn.Module]]:
    from avalanche.models import MultiHeadClassifier, MultiTaskModule

    if isinstance(spec, (list, tuple)):
        out = []
        for i, m in enumerate(spec):
            out += _flatten(m, f"{prefix}{i}.")
        return out
    if isinstance(spec, SupSupNet):
        raise UnsupportedLayerError("the network is already a SupSupNet; pass it to SupSupPlugin as it is")
    if isinstance(spec, (MultiTaskModule, MultiHeadClassifier)):
        raise UnsupportedLayerError(
            f"{prefix or 'the network'} is a multi-head {type(spec).__name__}: SupSup needs no task heads, "
            "each task's mask on the shared output layer acts as its head; build a single-head network "
            "(e.g. build_network(..., multihead=False))")
    if isinstance(spec, nn.Sequential):
        out = []
        for name, m in spec.named_children():
            out += _flatten(m, f"{prefix}{name}.")
        return out
    if type(spec).__name__ == "Classifier" and hasattr(spec, "features") and hasattr(spec, "classifier"):
        return _flatten(spec.features, f"{prefix}features.") + _flatten(spec.classifier, f"{prefix}classifier.")
    if not isinstance(spec, nn.Module):
        raise UnsupportedLayerError(f"cannot build a SupSup network from {type(spec).__name__}: "
                                    "pass an nn.Sequential or a list of layers")
    return [(prefix.rstrip(".") or type(spec).__name__, spec)]


def build_supsup_network(spec: Union[nn.Module, Sequence[nn.Module]], *, mask_mode: MaskMode = "threshold",
                         sparsity: float = 0.5, seed: int = 0, extra_outputs: int = 0) -> SupSupNet:
    """Turn an ordinary layer stack into a :class:`SupSupNet`.

    ``Linear`` and ``Conv2d`` become supermask layers of the same shape (their trained
    weights and biases are discarded: SupSup uses fixed random signed constants and no
    bias); ``BatchNorm1d/2d`` become non-affine per-task :class:`TaskBatchNorm`;
    parameter-free layers are kept. Anything else raises :class:`UnsupportedLayerError`
    naming the layer, before any training.

    Args:
        spec: an ``nn.Sequential`` (nested ones are flattened), a list of layers, or a
            network from :func:`avalanche_ext.models.build_network` with ``multihead=False``.
        mask_mode: ``"threshold"`` (``M = 1[S >= 0]``) or ``"topk"`` (keep the largest ``|S|``).
        sparsity: fraction of weights removed per layer in ``topk`` mode.
        seed: seed of the fixed weights and score initialisations.
        extra_outputs: "superfluous" output units appended to the last ``Linear`` layer.
            They are never a target, so training pushes their logits down on the task's
            own data; on another task's data they are not, which sharpens the entropy
            signal that task inference relies on (the paper's superfluous neurons).
            Predictions still come from the argmax over all outputs.
    """
    check_mask_args(mask_mode, sparsity)
    if extra_outputs < 0:
        raise ValueError(f"extra_outputs must be >= 0, got {extra_outputs}")
    modules = _flatten(spec)
    weighted = [i for i, (_, m) in enumerate(modules) if isinstance(m, (nn.Linear, nn.Conv2d))]
    if extra_outputs and (not weighted or not isinstance(modules[weighted[-1]][1], nn.Linear)):
        raise UnsupportedLayerError("extra_outputs needs the last weighted layer to be a Linear layer")
    layers: list[nn.Module] = []
    index = 0
    for pos, (name, m) in enumerate(modules):
        kw = dict(mask_mode=mask_mode, sparsity=sparsity, seed=seed, index=index)
        if isinstance(m, nn.Linear):
            extra = extra_outputs if pos == weighted[-1] else 0
            layers.append(MaskedLinear(m.in_features, m.out_features + extra, **kw))
            index += 1
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros":
                raise UnsupportedLayerError(f"layer {name} ({m}): only Conv2d with groups=1 and zero padding is supported")
            layers.append(MaskedConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                       m.dilation, **kw))
            index += 1
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            layers.append(TaskBatchNorm(m.num_features, m.eps, m.momentum if m.momentum is not None else 0.1))
        elif type(m) in _PARAMETER_FREE:
            layers.append(copy.deepcopy(m))
        else:
            raise UnsupportedLayerError(
                f"SupSup cannot convert layer {name} ({type(m).__name__}); supported layers: {SUPPORTED_LAYERS}")
    return SupSupNet(layers)


__all__ = ["SUPPORTED_LAYERS", "SupSupNet", "UnsupportedLayerError", "build_supsup_network"]
