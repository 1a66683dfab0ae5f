"""The two columns of Progress & Compress: a knowledge base and an active column with lateral adaptors.

Progress & Compress keeps two copies of the user's network ("column"). The *knowledge
base* (KB) accumulates everything learned so far; the *active column* (AC) learns the
current task and reads the KB through layer-wise lateral adaptors, so that what the KB
knows can speed up the new task. For every adapted layer $i$ of the AC,

$$
h^{AC}_i = \\sigma\\big(W_i h^{AC}_{i-1} + b_i
+ \\alpha_i \\odot U_i\\, \\sigma(V_i h^{KB}_{i-1} + c_i)\\big),
$$

where $h^{KB}_{i-1}$ is the input the KB's layer $i$ received on the same
example, $V_i, c_i$ a projection to ``width`` units, $U_i$ a map to layer
$i$'s output (a convolution with layer $i$'s kernel, stride and padding for
``Conv2d`` layers) and $\\alpha_i$ a learned per-unit scale initialised to small random
values. The first layer reads the raw input in both columns, so it has no adaptor.

``ProgressCompressNet`` builds both columns from any ``nn.Module`` whose ``Linear`` /
``Conv2d`` layers are each called once per forward pass (an MLP, a small CNN, Avalanche's
``MultiHeadClassifier`` heads...). It wires the adaptors
(:class:`~avalanche_ext.models.LateralAdaptor`) with forward hooks, so the user's module
is used unchanged; heads that Avalanche adds for new tasks get their adaptor when the
model is adapted. It returns the KB's output by default (what is evaluated) and the AC's
output under ``net.use("ac")``.

Paper: Schwarz, Luketina, Czarnecki, Grabska-Barwinska, Teh, Pascanu, Hadsell,
*Progress & Compress: A scalable framework for continual learning*, ICML 2018,
https://arxiv.org/abs/1805.06370 (eq. 1).

Example:
    >>> from avalanche_ext.models import build_network
    >>> net = ProgressCompressNet(build_network((1, 8, 8), 10, hidden=32))
    >>> with net.use("ac"):
    ...     y = net(torch.randn(4, 1, 8, 8))
    >>> tuple(y.shape), sorted(net.adaptors)
    ((4, 10), ['classifier', 'features__3'])
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Optional, Sequence, Union

import torch
from avalanche.benchmarks.scenarios import CLExperience
from avalanche.models import DynamicModule, MultiTaskModule
from avalanche.models.dynamic_modules import avalanche_model_adaptation
from torch import nn

from .layers.lateral import LateralAdaptor
from .common import grow_heads_to_state

ADAPTED_TYPES = (nn.Linear, nn.Conv2d)
COLUMNS = ("kb", "ac")


class _Columns(DynamicModule):
    """Holds the two columns; ``ProgressCompressNet`` adapts them itself, in order."""

    def __init__(self, kb: nn.Module, ac: nn.Module):
        super().__init__(auto_adapt=False)
        self.kb = kb
        self.ac = ac


def _adaptable_layers(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, ADAPTED_TYPES)]


def _remove_adaptor_hooks(module: nn.Module) -> None:
    for hook_id, hook in list(module._forward_hooks.items()):
        if isinstance(getattr(hook, "__self__", None), LateralAdaptor):
            del module._forward_hooks[hook_id]


def reset_module(module: nn.Module) -> None:
    """Re-initialise every sub-module that has ``reset_parameters`` (batch-norm statistics included)."""
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        has_own = any(True for _ in m.parameters(recurse=False))
        if callable(reset) and (has_own or isinstance(m, nn.modules.batchnorm._NormBase)):
            reset()


class ProgressCompressNet(MultiTaskModule):
    """Knowledge base + active column + lateral adaptors, built from one user column.

    The KB is ``column`` itself; the AC is a re-initialised deep copy. Single-head and
    multi-head (``MultiTaskModule``, e.g. with Avalanche's ``MultiHeadClassifier``) columns
    both work: a multi-task column receives the task labels, a plain one ignores them.

    Args:
        column: the network of one column (e.g. ``avalanche_ext.models.build_network``).
        lateral: which AC layers get an adaptor: ``"auto"`` (every ``Linear``/``Conv2d`` layer
            except the first, which reads the raw input; heads added later included), or a
            sequence of module names of ``column`` (a name also covers the layers under it,
            so ``"classifier"`` covers every head); ``()`` gives no adaptor at all.
        adaptor_width: units of each adaptor's projection $V$; ``None`` uses
            ``min(fan_in, fan_out)`` of the layer it feeds (square for hidden layers, narrow
            for heads, so a new head adds few parameters).

    Restoring: a fresh net built the same way (same column, ``lateral`` and
    ``adaptor_width``) loads the state of a trained one: ``fresh.load_state_dict(state)``
    first creates the task heads the state holds (Avalanche's ``MultiHeadClassifier``
    heads, at their saved widths) and their adaptors, then fills everything in. Move the
    net to its device afterwards (a strategy does it).

    Raises:
        TypeError: ``column`` is not an ``nn.Module``.
        ValueError: a bad ``lateral``/``adaptor_width``, or a column with a parametrised
            layer that cannot be re-initialised (no ``reset_parameters``).
    """

    def __init__(
        self,
        column: nn.Module,
        *,
        lateral: Union[str, Sequence[str]] = "auto",
        adaptor_width: Optional[int] = None,
    ):
        super().__init__()
        if not isinstance(column, nn.Module):
            raise TypeError(f"column must be an nn.Module, got {type(column).__name__}")
        if isinstance(column, ProgressCompressNet):
            raise TypeError("column is already a ProgressCompressNet; pass the plain column network")
        if adaptor_width is not None and (not isinstance(adaptor_width, int) or adaptor_width < 1):
            raise ValueError(f"adaptor_width must be a positive int or None, got {adaptor_width!r}")
        self._check_resettable(column)
        layers = _adaptable_layers(column)
        if isinstance(lateral, str):
            if lateral != "auto":
                raise ValueError(f"lateral must be 'auto' or a sequence of module names, got {lateral!r}")
            if not layers:
                raise ValueError("the column has no Linear/Conv2d layer to adapt")
            self.lateral: Union[str, tuple[str, ...]] = "auto"
            self._first_layer = layers[0]
        else:
            names = tuple(str(n) for n in lateral)
            known = dict(column.named_modules())
            for name in names:
                if name not in known:
                    raise ValueError(f"lateral names an unknown module {name!r}; layers: {', '.join(layers)}")
                if not any(self._covers(name, layer) for layer in layers):
                    raise ValueError(f"lateral module {name!r} holds no Linear/Conv2d layer")
            self.lateral = names
            self._first_layer = ""
        self.multitask = isinstance(column, MultiTaskModule)
        self.adaptor_width = adaptor_width
        self.columns = _Columns(column, copy.deepcopy(column))
        reset_module(self.columns.ac)
        self.adaptors = nn.ModuleDict()
        self.output = "kb"
        self.attach_adaptors()
        self.register_load_state_dict_pre_hook(_grow_before_load)

    # ----- structure --------------------------------------------------------------
    @property
    def kb(self) -> nn.Module:
        """The knowledge base column (evaluated; trained in the compress phase)."""
        return self.columns.kb

    @property
    def ac(self) -> nn.Module:
        """The active column (trained in the progress phase, reset after each task)."""
        return self.columns.ac

    @staticmethod
    def _covers(prefix: str, name: str) -> bool:
        return prefix == "" or name == prefix or name.startswith(prefix + ".")

    @staticmethod
    def _check_resettable(column: nn.Module) -> None:
        for name, m in column.named_modules():
            own = [n for n, p in m.named_parameters(recurse=False)]
            if own and not callable(getattr(m, "reset_parameters", None)):
                raise ValueError(
                    f"module {name or '<column>'} ({type(m).__name__}) has parameters {own} but no "
                    "reset_parameters(): the active column cannot be re-initialised after each task"
                )

    def _wants(self, name: str) -> bool:
        if self.lateral == "auto":
            return name != self._first_layer
        return any(self._covers(prefix, name) for prefix in self.lateral)

    def _width(self, layer: nn.Module) -> int:
        if self.adaptor_width is not None:
            return self.adaptor_width
        if isinstance(layer, nn.Linear):
            return min(layer.in_features, layer.out_features)
        return min(layer.in_channels, layer.out_channels)

    def attach_adaptors(self) -> list[str]:
        """Give every adapted AC layer its adaptor and hooks; returns the layers that got a new adaptor.

        Called by ``adaptation``; call it yourself after changing the columns by hand.
        """
        created = []
        kb_modules = dict(self.kb.named_modules())
        for name, ac_layer in self.ac.named_modules():
            if not isinstance(ac_layer, ADAPTED_TYPES) or not self._wants(name):
                continue
            kb_layer = kb_modules.get(name)
            if type(kb_layer) is not type(ac_layer) or kb_layer.weight.shape != ac_layer.weight.shape:
                raise RuntimeError(f"the knowledge base and the active column differ at layer {name!r}")
            key = name.replace(".", "__")
            adaptor = self.adaptors[key] if key in self.adaptors else None
            if adaptor is None or not adaptor.fits(ac_layer):
                adaptor = LateralAdaptor(ac_layer, self._width(ac_layer)).to(ac_layer.weight.device)
                self.adaptors[key] = adaptor
                created.append(name)
            for layer, hook in ((kb_layer, adaptor._record), (ac_layer, adaptor._inject)):
                if getattr(layer, "_pnc_token", None) != adaptor.token:
                    _remove_adaptor_hooks(layer)
                    layer.register_forward_hook(hook)
                    layer._pnc_token = adaptor.token
        return created

    def adaptation(self, experience: CLExperience) -> None:
        """Adapt both columns to ``experience`` (new heads...), then give new layers their adaptors."""
        super().adaptation(experience)
        avalanche_model_adaptation(self.columns.kb, experience)
        avalanche_model_adaptation(self.columns.ac, experience)
        self.attach_adaptors()

    def reset_active_column(self, adaptors: bool = False) -> None:
        """Re-initialise the AC (and, if ``adaptors``, the lateral adaptors) with fresh random values."""
        reset_module(self.ac)
        if adaptors:
            for adaptor in self.adaptors.values():
                adaptor.reset_parameters()

    # ----- parameters -------------------------------------------------------------
    def kb_parameters(self) -> Iterator[nn.Parameter]:
        """What the compress phase trains."""
        return self.kb.parameters()

    def progress_parameters(self) -> Iterator[nn.Parameter]:
        """What the progress phase trains: the AC and the adaptors."""
        yield from self.ac.parameters()
        yield from self.adaptors.parameters()

    def n_parameters(self) -> dict[str, int]:
        """Scalar parameters of the KB, the AC, the adaptors and in total."""
        kb = sum(p.numel() for p in self.kb.parameters())
        ac = sum(p.numel() for p in self.ac.parameters())
        ad = sum(p.numel() for p in self.adaptors.parameters())
        return {"kb": kb, "ac": ac, "adaptors": ad, "total": kb + ac + ad}

    # ----- forward ----------------------------------------------------------------
    @contextlib.contextmanager
    def use(self, column: str) -> Iterator["ProgressCompressNet"]:
        """Within the block, ``forward`` returns ``column``'s output (``"kb"`` or ``"ac"``)."""
        if column not in COLUMNS:
            raise ValueError(f"column must be one of {COLUMNS}, got {column!r}")
        previous, self.output = self.output, column
        try:
            yield self
        finally:
            self.output = previous

    def _call(self, column: nn.Module, x: torch.Tensor, task_label: Optional[int]) -> torch.Tensor:
        return column(x, task_label) if self.multitask else column(x)

    def _run(self, x: torch.Tensor, task_label: Optional[int]) -> torch.Tensor:
        if self.output == "kb":
            return self._call(self.kb, x, task_label)
        adaptors = list(self.adaptors.values())
        kb_was_training = self.kb.training
        for a in adaptors:
            a._armed, a._kb_input = True, None
        try:
            self.kb.eval()  # the KB is frozen while the AC reads it
            with torch.no_grad():
                self._call(self.kb, x, task_label)
            return self._call(self.ac, x, task_label)
        finally:
            self.kb.train(kb_was_training)
            for a in adaptors:
                a._armed, a._kb_input = False, None

    def forward(self, x: torch.Tensor, task_labels: Union[None, int, torch.Tensor] = None) -> torch.Tensor:
        """The output of the column chosen by ``use`` (the KB by default).

        A multi-task column gets the batch split by task label (one head per task); a
        single-head column ignores ``task_labels``.
        """
        if not self.multitask:
            return self._run(x, None)
        if task_labels is None:
            return self.forward_all_tasks(x)
        if isinstance(task_labels, int):
            return self._run(x, task_labels)
        tasks = torch.unique(task_labels)
        if len(tasks) == 1:
            return self._run(x, int(tasks[0]))
        parts = [(task_labels == t, self._run(x[task_labels == t], int(t))) for t in tasks]
        out = x.new_zeros(x.shape[0], max(p.shape[1] for _, p in parts))
        for mask, part in parts:
            out[mask, : part.shape[1]] = part
        return out

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self._run(x, task_label)


def _grow_before_load(module: ProgressCompressNet, state_dict: dict, prefix: str, *args: object) -> None:
    """Create the heads and adaptors a state dict holds, so that a fresh net can load it."""
    for name in COLUMNS:
        grow_heads_to_state(getattr(module.columns, name), state_dict, f"{prefix}columns.{name}.")
    module.attach_adaptors()


__all__ = ["ProgressCompressNet", "reset_module"]
