"""Supermask networks: fixed random signed-constant weights, one learned mask per task.

A :class:`SupSupNet` holds a network's module tree, with its own ``forward``, in which
every ``Linear`` and ``Conv2d`` became a supermask layer. Its :class:`MaskedLinear` and
:class:`MaskedConv2d` layers (in :mod:`avalanche_ext.models.layers.supermask`) hold a
*fixed* weight ``W`` (a buffer, never trained:
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
from .common import described_modules
from .layers.supermask import MaskedConv2d, MaskedLayer, MaskedLinear, Route, Routed, TaskBatchNorm, check_mask_args


class UnsupportedLayerError(ValueError):
    """A layer that :func:`build_supsup_network` cannot turn into a supermask layer."""


class SupSupNet(nn.Module):
    """A network whose supermask layers take one mask per task; see the module docstring.

    The network is the user's module tree with its ``Linear`` / ``Conv2d`` turned into
    supermask layers and its batch norms into per-task :class:`TaskBatchNorm`; the tree's own
    ``forward`` runs unchanged. Before each pass the net hands the task route to every
    supermask and batch-norm module it holds.

    Example:
        >>> from torch import nn
        >>> net = build_supsup_network(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
        >>> slot = net.start_task()          # train net.parameters() (the scores) on task 0 ...
        >>> _ = net.freeze_task()            # ... then keep its mask: task 0 is now fixed
        >>> net(torch.zeros(2, 1, 8, 8), task=0).shape
        torch.Size([2, 10])

    Args:
        body: the converted module tree (what :func:`build_supsup_network` returns holds it),
            or a list of modules run one after the other.

    Raises:
        ValueError: ``body`` holds no ``MaskedLinear`` or ``MaskedConv2d``.
    """

    def __init__(self, body: Union[nn.Module, Iterable[nn.Module]]):
        super().__init__()
        self.body = body if isinstance(body, nn.Module) else nn.Sequential(*body)
        if not self.masked_layers:
            raise ValueError("a SupSupNet needs at least one MaskedLinear or MaskedConv2d layer")
        self.register_buffer("n_frozen", torch.zeros((), dtype=torch.long))
        self._route: Optional[Route] = None

    @property
    def num_masks(self) -> int:
        """Number of frozen (learned) task masks."""
        return int(self.n_frozen)

    @property
    def masked_layers(self) -> list[MaskedLayer]:
        """The supermask layers, in the order of the module tree."""
        return [m for m in self.body.modules() if isinstance(m, MaskedLayer)]

    @property
    def norm_layers(self) -> list[TaskBatchNorm]:
        """The per-task batch norms, in the order of the module tree."""
        return [m for m in self.body.modules() if isinstance(m, TaskBatchNorm)]

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
        routed = [m for m in self.body.modules() if isinstance(m, Routed)]
        for m in routed:
            m.route, m.live = route, live
        try:
            return self.body(x)
        finally:  # no route (and no autograd graph of superposition weights) outlives the pass
            for m in routed:
                m.route = None

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
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
SUPPORTED_LAYERS = ("Linear and Conv2d (groups=1, zero padding) become supermask layers; BatchNorm1d/2d/3d "
                    "becomes non-affine batch norm with running statistics per task; modules without parameters "
                    "(activations, Flatten, Dropout, pooling, Identity, ...) and containers are kept as they are")


def _reject_dynamic(spec: nn.Module) -> None:
    from avalanche.models import DynamicModule, MultiTaskModule

    if isinstance(spec, SupSupNet):
        raise UnsupportedLayerError("the network is already a SupSupNet; pass it to SupSupPlugin as it is")
    for where, m in described_modules(spec):
        if isinstance(m, MultiTaskModule):
            raise UnsupportedLayerError(
                f"{where} is multi-head: SupSup needs no task heads, each task's mask on the shared output layer "
                "acts as its head; pass a single-head network (e.g. build_network(..., multihead=False), or the "
                "'features' of an Avalanche MTSimpleMLP followed by an nn.Linear)")
        if isinstance(m, DynamicModule):
            raise UnsupportedLayerError(
                f"{where} is an Avalanche DynamicModule, which changes its layers during training; SupSup's "
                "layers are fixed: pass a network whose output layer is an nn.Linear with one unit per class")


def _converted(name: str, m: nn.Module, kw: dict[str, Any], extra: int) -> Optional[nn.Module]:
    """The supermask counterpart of leaf ``m``; ``None`` for modules kept as they are."""
    if isinstance(m, nn.Linear):
        return MaskedLinear(m.in_features, m.out_features + extra, **kw)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.padding_mode != "zeros":
            raise UnsupportedLayerError(
                f"module '{name}' ({m}): SupSup supports Conv2d with groups=1 and padding_mode='zeros' only; "
                "build that convolution with those settings")
        return MaskedConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, **kw)
    if isinstance(m, _NORMS):
        return TaskBatchNorm(m.num_features, m.eps, m.momentum if m.momentum is not None else 0.1)
    own = [n for n, _ in m.named_parameters(recurse=False)]
    if own:
        raise UnsupportedLayerError(
            f"SupSup cannot convert module '{name or type(m).__name__}' ({type(m).__name__}): its parameters "
            f"({', '.join(own)}) would be shared by every task and change with each one. Replace it by supported "
            f"modules, or apply it outside the network (e.g. precompute its output). Supported: {SUPPORTED_LAYERS}")
    return None


def build_supsup_network(spec: Union[nn.Module, Sequence[nn.Module]], *, mask_mode: MaskMode = "threshold",
                         sparsity: float = 0.5, seed: int = 0, extra_outputs: int = 0) -> SupSupNet:
    """Turn an ordinary network into a :class:`SupSupNet`, keeping its ``forward``.

    The network is copied and every module of the copy is visited: ``Linear`` and
    ``Conv2d`` are replaced in place by supermask layers of the same shape (their trained
    weights and biases are discarded: SupSup uses fixed random signed constants and no
    bias); ``BatchNorm1d/2d/3d`` by non-affine :class:`TaskBatchNorm` with running
    statistics per task (a learned task's statistics are frozen with its mask); modules
    without parameters (activations, ``Flatten``, ``Dropout``, pooling) and containers stay
    as they are, so the network's own ``forward`` still runs: Avalanche's ``SimpleMLP``, a
    ResNet, or any ``nn.Module`` of these parts. A module holding other trained
    parameters raises :class:`UnsupportedLayerError` naming it, before any training. The
    network passed in is left untouched.

    Args:
        spec: an ``nn.Module`` (any tree of the supported modules, with its own ``forward``)
            or a list of modules run one after the other.
        mask_mode: ``"threshold"`` (``M = 1[S >= 0]``) or ``"topk"`` (keep the largest ``|S|``).
        sparsity: fraction of weights removed per layer in ``topk`` mode.
        seed: seed of the fixed weights and score initialisations.
        extra_outputs: "superfluous" output units appended to the last ``Linear`` layer (the
            last one registered, which must be the output layer and the last weighted
            one). They are never a target, so training pushes their logits down on the
            task's own data; on another task's data they are not, which sharpens the
            entropy signal that task inference relies on (the paper's superfluous neurons).
            Predictions still come from the argmax over all outputs.

    Raises:
        UnsupportedLayerError: a module with parameters SupSup cannot mask, a grouped or
            non-zero-padded ``Conv2d``, a multi-head or other Avalanche dynamic module, a
            network without any ``Linear``/``Conv2d``, or ``extra_outputs`` on a network
            whose last weighted layer is not a ``Linear``.
        ValueError: a bad ``mask_mode``, ``sparsity`` or ``extra_outputs``.
    """
    check_mask_args(mask_mode, sparsity)
    if extra_outputs < 0:
        raise ValueError(f"extra_outputs must be >= 0, got {extra_outputs}")
    if isinstance(spec, (list, tuple)):
        spec = nn.Sequential(*spec)
    if not isinstance(spec, nn.Module):
        raise UnsupportedLayerError(f"cannot build a SupSup network from a {type(spec).__name__}: "
                                    "pass an nn.Module or a list of modules")
    _reject_dynamic(spec)
    body = copy.deepcopy(spec)
    # every place a module sits, in the order of the tree (a module used twice is converted once, stays shared)
    tree = list(body.named_modules(remove_duplicate=False))
    owners = dict(tree)
    weighted = [m for _, m in tree if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not weighted:
        raise UnsupportedLayerError(f"{type(spec).__name__} has no Linear or Conv2d module for SupSup to mask")
    if extra_outputs and not isinstance(weighted[-1], nn.Linear):
        raise UnsupportedLayerError("extra_outputs needs the last weighted layer to be a Linear layer")
    done: dict[int, Optional[nn.Module]] = {}
    for name, m in tree:
        if id(m) not in done:
            if list(m.children()):
                done[id(m)] = _check_container(name, m)
            else:
                kw = dict(mask_mode=mask_mode, sparsity=sparsity, seed=seed,
                          index=sum(isinstance(c, MaskedLayer) for c in done.values()))
                done[id(m)] = _converted(name, m, kw, extra_outputs if m is weighted[-1] else 0)
        new = done[id(m)]
        if new is None:
            continue
        if not name:  # the network is a single layer
            body = new
        else:
            parent, _, child = name.rpartition(".")
            owners[parent]._modules[child] = new
    return SupSupNet(body)


def _check_container(name: str, m: nn.Module) -> Optional[nn.Module]:
    """A container may hold modules, but no parameters of its own (they would be shared by every task)."""
    own = [n for n, _ in m.named_parameters(recurse=False)]
    if own:
        raise UnsupportedLayerError(
            f"SupSup cannot convert module '{name or type(m).__name__}' ({type(m).__name__}): besides its "
            f"submodules it holds parameters of its own ({', '.join(own)}), which every task would share and "
            "change. Hold them in a supported submodule (e.g. an nn.Linear) or drop them")
    return None  # kept as it is


__all__ = ["SUPPORTED_LAYERS", "SupSupNet", "UnsupportedLayerError", "build_supsup_network"]
