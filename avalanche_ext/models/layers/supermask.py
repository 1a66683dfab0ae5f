"""SupSup's supermask layers: fixed random signed-constant weights, one binary mask per task.

:class:`MaskedLinear` and :class:`MaskedConv2d` hold a *fixed* weight ``W`` (a buffer, never
trained: ``W_ij = +-sqrt(2 / fan_in)`` with random signs) and one trainable score tensor
``S`` for the task being learned. The effective weight of task ``t`` is ``W * M_t`` with the
binary mask ``M_t`` taken from ``S`` (threshold ``S >= 0`` or top-k on ``|S|``, with a
straight-through gradient). A finished task's mask is frozen into a buffer with one bit per
weight. :class:`TaskBatchNorm` is non-affine batch norm with running statistics per task.
:class:`~avalanche_ext.models.SupSupNet` holds them in a module tree and sets their task
route (:class:`Routed`) before each forward pass.

Paper: Wortsman et al., "Supermasks in Superposition", NeurIPS 2020,
https://arxiv.org/abs/2006.14769.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...functional.bits import pack_bits, unpack_bits
from ...functional.supsup import MaskMode, straight_through_mask

Route = Union[int, Tensor]


def check_mask_args(mask_mode: str, sparsity: float) -> None:
    if mask_mode not in ("threshold", "topk"):
        raise ValueError(f"mask_mode must be 'threshold' or 'topk', not {mask_mode!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


class Routed(nn.Module):
    """A module whose forward needs a task route; the owning network sets ``route`` before it runs.

    This lets a supermask layer sit anywhere in a user's module tree, whose ``forward``
    calls it as ``layer(x)`` with no route.
    """

    route: Optional[Route]
    live: bool = True

    def _routed(self, route: Optional[Route]) -> Route:
        if route is None:
            route = self.route
        if route is None:
            raise RuntimeError(f"{type(self).__name__} was called without a task route: run it through its "
                               "SupSupNet (net(x, task=...)) or pass the route explicitly")
        return route


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 1) % (2**62)
    return torch.Generator().manual_seed(seed)


class MaskedLayer(Routed):
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
        check_mask_args(mask_mode, sparsity)
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
        self.route: Optional[Route] = None
        self.reset_scores(0)

    # ----- masks ----------------------------------------------------------------
    @torch.no_grad()
    def reset_scores(self, slot: int) -> None:
        """Fresh scores for task slot ``slot``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, seeded."""
        bound = 1.0 / math.sqrt(self.fan_in)
        # drawn on the CPU on purpose (a seeded CPU generator gives the same scores on every device), then moved
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
            self._dense[i] = unpack_bits(packed, self.shape, self.weight.dtype)
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

    def get_extra_state(self) -> dict[str, Any]:
        """The seeds of later tasks' scores and the mask rule travel with the saved masks."""
        return {"seed": self.seed, "index": self.index, "mask_mode": self.mask_mode, "sparsity": self.sparsity}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed, self.index = int(state["seed"]), int(state["index"])
        self.mask_mode, self.sparsity = state["mask_mode"], float(state["sparsity"])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        n = 0
        while f"{prefix}mask_{n}" in state_dict:
            if f"mask_{n}" not in self._buffers:  # created where the model is; the load copies into it
                self.register_buffer(f"mask_{n}", torch.empty_like(state_dict[f"{prefix}mask_{n}"],
                                                                   device=self.weight.device))
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

    def forward(self, x: Tensor, route: Optional[Route] = None) -> Tensor:
        """``x`` through the weight of ``route``; ``None`` takes the route the owning network set."""
        route = self._routed(route)
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


class TaskBatchNorm(Routed):
    """Non-affine batch norm with running statistics per task (buffers ``mean_i``, ``var_i``).

    A route to task ``i`` normalises with task ``i``'s statistics (updated in training
    mode); a superposition (task inference) normalises with the batch's own statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.n_slots = 0
        self.route: Optional[Route] = None
        self.live = True
        # an empty, unsaved buffer that follows .to(): new statistics are created on its device
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def ensure(self, n: int) -> None:
        """Make sure statistics exist for slots ``0 .. n-1``."""
        device = self._anchor.device
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

    def forward(self, x: Tensor, route: Optional[Route] = None, live: Optional[bool] = None) -> Tensor:
        """Normalise ``x``; running statistics are updated only for the live slot in training mode.

        ``route`` / ``live`` default to what the owning network set (:attr:`route`, :attr:`live`).
        """
        live = self.live if live is None else live
        route = self._routed(route)
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


__all__ = ["MaskedConv2d", "MaskedLayer", "MaskedLinear", "Route", "Routed", "TaskBatchNorm", "check_mask_args"]
