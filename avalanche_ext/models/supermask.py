"""Supermask networks: fixed random signed-constant weights, one learned mask per task.

A :class:`SupSupNet` is a flat stack of layers. Its :class:`MaskedLinear` and
:class:`MaskedConv2d` layers hold a *fixed* weight ``W`` (a buffer, never trained:
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
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional.supsup import MaskMode, pack_bits, straight_through_mask, unpack_bits

Route = Union[int, Tensor]


class UnsupportedLayerError(ValueError):
    """A layer that :func:`build_supsup_network` cannot turn into a supermask layer."""


def _check_mask_args(mask_mode: str, sparsity: float) -> None:
    if mask_mode not in ("threshold", "topk"):
        raise ValueError(f"mask_mode must be 'threshold' or 'topk', not {mask_mode!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 1) % (2**62)
    return torch.Generator().manual_seed(seed)


class MaskedLayer(nn.Module):
    """Common part of :class:`MaskedLinear` and :class:`MaskedConv2d`.

    Buffers: ``weight`` (fixed signed constants) and ``mask_0 .. mask_{k-1}`` (packed
    frozen masks). Parameter: ``scores`` (the task being learned).

    Args:
        shape: shape of the weight.
        fan_in: fan-in of the weight (for the scale ``sqrt(2 / fan_in)``).
        mask_mode: ``"threshold"`` (``S >= 0``) or ``"topk"`` (largest ``|S|``).
        sparsity: fraction of weights removed in ``topk`` mode.
        seed: seed of the random signs and score initialisations.
        index: position of the layer in its network (keeps seeds distinct per layer).
    """

    def __init__(self, shape: Sequence[int], fan_in: int, *, mask_mode: MaskMode = "threshold",
                 sparsity: float = 0.5, seed: int = 0, index: int = 0):
        super().__init__()
        _check_mask_args(mask_mode, sparsity)
        self.shape = tuple(int(s) for s in shape)
        self.fan_in = int(fan_in)
        self.mask_mode: MaskMode = mask_mode
        self.sparsity = float(sparsity)
        self.seed = int(seed)
        self.index = int(index)
        signs = torch.randint(0, 2, self.shape, generator=_generator(seed, index, 0)).float() * 2 - 1
        self.register_buffer("weight", signs * math.sqrt(2.0 / self.fan_in))
        self.scores = nn.Parameter(torch.empty(self.shape))
        self.n_masks = 0
        self._dense: dict[int, Tensor] = {}
        self._stack: Optional[Tensor] = None
        self.reset_scores(0)

    # ----- masks ----------------------------------------------------------------
    @torch.no_grad()
    def reset_scores(self, slot: int) -> None:
        """Fresh scores for task slot ``slot``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, seeded."""
        bound = 1.0 / math.sqrt(self.fan_in)
        fresh = torch.rand(self.shape, generator=_generator(self.seed, self.index, 1, slot)) * 2 * bound - bound
        self.scores.copy_(fresh.to(self.scores.device))

    def live_mask(self) -> Tensor:
        """The mask of the scores, with the straight-through gradient."""
        return straight_through_mask(self.scores, self.mask_mode, self.sparsity)

    @torch.no_grad()
    def freeze(self) -> int:
        """Store the mask of the current scores as frozen mask ``num_masks``; return its index."""
        slot = self.n_masks
        mask = self.live_mask().bool()
        self.register_buffer(f"mask_{slot}", pack_bits(mask))
        self.n_masks += 1
        self._clear_cache()
        return slot

    def frozen_mask(self, i: int) -> Tensor:
        """Frozen mask ``i`` as a float tensor (unpacked once, then cached)."""
        if not 0 <= i < self.n_masks:
            raise IndexError(f"mask {i} does not exist: {self.n_masks} frozen mask(s)")
        if i not in self._dense:
            packed = getattr(self, f"mask_{i}")
            self._dense[i] = unpack_bits(packed, self.shape).to(self.weight.dtype)
        return self._dense[i]

    def stacked_masks(self) -> Tensor:
        """All frozen masks as one float tensor of shape ``(k, *weight.shape)`` (cached)."""
        if self._stack is None or self._stack.shape[0] != self.n_masks:
            self._stack = torch.stack([self.frozen_mask(i) for i in range(self.n_masks)])
        return self._stack

    def mask_bytes(self) -> int:
        """Bytes one packed mask of this layer takes."""
        return (math.prod(self.shape) + 7) // 8

    def _clear_cache(self) -> None:
        self._dense = {}
        self._stack = None

    def _apply(self, fn, *args, **kwargs):  # device/dtype moves invalidate the unpacked caches
        self._clear_cache()
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        n = 0
        while f"{prefix}mask_{n}" in state_dict:
            if f"mask_{n}" not in self._buffers:
                self.register_buffer(f"mask_{n}", torch.empty_like(state_dict[f"{prefix}mask_{n}"]))
            n += 1
        for extra in range(n, self.n_masks):
            del self._buffers[f"mask_{extra}"]
        self.n_masks = n
        self._clear_cache()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    # ----- forward ----------------------------------------------------------------
    def effective_weight(self, route: Route) -> Tensor:
        """``W * M`` for an ``int`` route, or ``W * sum_i alpha_i M_i`` for a 1-D ``alpha``."""
        if isinstance(route, Tensor):
            alphas = route.to(self.weight.device, self.weight.dtype)
            mix = torch.tensordot(alphas, self.stacked_masks(), dims=1)
            return self.weight * mix
        if route == self.n_masks:
            return self.weight * self.live_mask()
        return self.weight * self.frozen_mask(route)

    def forward(self, x: Tensor, route: Route) -> Tensor:
        if isinstance(route, Tensor) and route.dim() == 2:
            return self._per_sample(x, route.to(x.device, x.dtype))
        return self._apply_weight(x, self.effective_weight(route))

    def _apply_weight(self, x: Tensor, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def _per_sample(self, x: Tensor, alphas: Tensor) -> Tensor:
        raise NotImplementedError


class MaskedLinear(MaskedLayer):
    """``y = x (W * M_t)^T`` with a fixed signed-constant ``W`` and no bias."""

    def __init__(self, in_features: int, out_features: int, **kwargs: Any):
        super().__init__((out_features, in_features), in_features, **kwargs)
        self.in_features = in_features
        self.out_features = out_features

    def _apply_weight(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.linear(x, weight)

    def _per_sample(self, x: Tensor, alphas: Tensor) -> Tensor:
        weights = self.weight * self.stacked_masks()  # (k, out, in)
        outs = torch.einsum("bi,koi->bko", x, weights)
        return torch.einsum("bk,bko->bo", alphas, outs)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, mask_mode={self.mask_mode}, masks={self.n_masks}"


class MaskedConv2d(MaskedLayer):
    """A 2-D convolution with a fixed signed-constant kernel ``W * M_t`` and no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Sequence[int]],
                 stride: Union[int, Sequence[int]] = 1, padding: Union[int, Sequence[int], str] = 0,
                 dilation: Union[int, Sequence[int]] = 1, **kwargs: Any):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__((out_channels, in_channels, kh, kw), in_channels * kh * kw, **kwargs)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def _apply_weight(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation)

    def _per_sample(self, x: Tensor, alphas: Tensor) -> Tensor:
        k = self.n_masks
        weights = (self.weight * self.stacked_masks()).flatten(0, 1)  # (k*out, in, kh, kw)
        out = F.conv2d(x, weights, None, self.stride, self.padding, self.dilation)
        out = out.view(x.shape[0], k, self.out_channels, *out.shape[2:])
        return torch.einsum("bk,bkchw->bchw", alphas, out)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel={self.shape[2:]}, stride={self.stride}, "
                f"padding={self.padding}, mask_mode={self.mask_mode}, masks={self.n_masks}")


class TaskBatchNorm(nn.Module):
    """Non-affine batch norm with running statistics per task (buffers ``mean_i``, ``var_i``).

    A route to task ``i`` normalises with task ``i``'s statistics (updated in training
    mode); a superposition (task inference) normalises with the batch's own statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.n_slots = 0

    def ensure(self, n: int) -> None:
        """Make sure statistics exist for slots ``0 .. n-1``."""
        device = next(iter(self._buffers.values())).device if self._buffers else None
        while self.n_slots < n:
            self.register_buffer(f"mean_{self.n_slots}", torch.zeros(self.num_features, device=device))
            self.register_buffer(f"var_{self.n_slots}", torch.ones(self.num_features, device=device))
            self.n_slots += 1

    @torch.no_grad()
    def reset(self, slot: int) -> None:
        self.ensure(slot + 1)
        getattr(self, f"mean_{slot}").zero_()
        getattr(self, f"var_{slot}").fill_(1.0)

    def slot_bytes(self) -> int:
        return 2 * self.num_features * 4

    def forward(self, x: Tensor, route: Route, live: bool = True) -> Tensor:
        """Normalise ``x``; running statistics are updated only for the live slot in training mode."""
        if isinstance(route, Tensor):
            return F.batch_norm(x, None, None, training=True, eps=self.eps)
        self.ensure(route + 1)
        return F.batch_norm(x, getattr(self, f"mean_{route}"), getattr(self, f"var_{route}"),
                            training=self.training and live, momentum=self.momentum, eps=self.eps)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        n = 0
        while f"{prefix}mean_{n}" in state_dict:
            n += 1
        for extra in range(n, self.n_slots):
            del self._buffers[f"mean_{extra}"], self._buffers[f"var_{extra}"]
        self.n_slots = min(self.n_slots, n)
        self.ensure(n)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, affine=False, per_task=True, slots={self.n_slots}"


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
    def mask_bytes_per_task(self) -> int:
        """Bytes of one task's packed binary masks (one bit per masked weight)."""
        return sum(m.mask_bytes() for m in self.masked_layers)

    def memory_report(self) -> dict[str, int]:
        """What the model stores, in bytes: per task (masks, BN statistics) and shared."""
        n_weights = sum(math.prod(m.shape) for m in self.masked_layers)
        per_task_bn = sum(bn.slot_bytes() for bn in self.norm_layers)
        return {
            "mask_bytes_per_task": self.mask_bytes_per_task(),
            "bn_bytes_per_task": per_task_bn,
            "bytes_per_task": self.mask_bytes_per_task() + per_task_bn,
            "float32_bytes_per_task_equivalent": 4 * n_weights,
            "shared_weight_bytes": 4 * n_weights,
            "score_bytes": 4 * n_weights,
            "n_masked_weights": n_weights,
            "num_masks": self.num_masks,
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
    _check_mask_args(mask_mode, sparsity)
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


__all__ = [
    "MaskedConv2d", "MaskedLayer", "MaskedLinear", "SUPPORTED_LAYERS", "SupSupNet", "TaskBatchNorm",
    "UnsupportedLayerError", "build_supsup_network",
]
