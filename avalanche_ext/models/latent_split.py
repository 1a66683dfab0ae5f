"""A network cut at a named layer: what runs below the cut, its activations, and rows injected there.

Latent replay and generative latent replay cut a model at a *latent layer*: the layers
below the cut are frozen (or slowed down) once the first experience(s) are learned, the
activations of the latent layer are what the method stores or generates, and replayed
activations are appended to that layer's output so only the layers above see them.
:class:`LatentCut` does this surgery on any ``nn.Module`` with the layer on its forward
path; the functions below it find the layer, compute its activations and split the
parameters and modules below it from the rest.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from torch import Tensor, nn


class LatentLayerError(ValueError):
    """The model has no layer with the requested name, or cannot be cut there."""


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule of ``model`` called ``name`` (as in ``model.named_modules()``).

    Raises:
        LatentLayerError: no such submodule; the message lists the names that exist.
    """
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = sorted((n for n in modules if n), key=lambda n: n.count("."))  # outer blocks first, in order
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    raise LatentLayerError(
        f"the model ({type(model).__name__}) has no layer named {name!r} to use as the latent layer; "
        f"pass latent_layer= one of: {shown}"
    )


class LatentCapture:
    """Context manager that records the output of one layer during forward passes."""

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.outputs: list[Tensor] = []
        self._handle: Optional[Any] = None

    def __enter__(self) -> "LatentCapture":
        self._handle = self.layer.register_forward_hook(lambda m, i, o: self.outputs.append(o.detach()))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for a model with neither)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def compute_latents(model: nn.Module, layer: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Activations of ``layer`` for inputs ``x`` (model in eval mode, no gradient).

    The whole model is run so any network with the layer on its forward path works;
    each chunk of ``x`` is moved to the model's device, and the activations stay there.
    The mode of the model is restored afterwards.
    """
    was_training = model.training
    model.eval()
    dev = model_device(model)
    out = []
    try:
        for i in range(0, len(x), batch_size):
            with LatentCapture(layer) as cap:
                model(x[i : i + batch_size].to(dev))
            if len(cap.outputs) != 1:
                raise LatentLayerError(
                    f"the latent layer ran {len(cap.outputs)} times in one forward pass; pick a layer used exactly once"
                )
            out.append(cap.outputs[0])
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def split_model(model: nn.Module, layer_name: str, example: Tensor) -> tuple[list[str], list[str]]:
    """The part of ``model`` below the cut at ``layer_name``.

    Returns the names of the parameters that influence the layer's output (found by
    differentiating it on ``example``, so any architecture works, not only
    ``nn.Sequential``) and the names of the modules that run before the layer's output
    is ready (the layer itself and everything it consumes, not its ancestors).

    Raises:
        LatentLayerError: no such layer, or the layer does not run on ``example``.
    """
    layer = find_layer(model, layer_name)
    named_modules = dict(model.named_modules())
    ancestors = {n for n in named_modules if n == "" or layer_name.startswith(n + ".")}
    finished: list[str] = []
    outputs: list[Tensor] = []
    handles = [m.register_forward_hook(lambda m, i, o, n=n: finished.append(n))
               for n, m in named_modules.items() if n not in ancestors]
    handles.append(layer.register_forward_hook(lambda m, i, o: outputs.append(o)))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen ones stay frozen
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(example)
        if not outputs:
            raise LatentLayerError(f"the layer {layer_name!r} is not used in the model's forward pass")
        z = outputs[0]
        below_modules = finished[: finished.index(layer_name) + 1]
        if not z.requires_grad or not named:
            return [], below_modules
        grads = torch.autograd.grad(z.float().sum(), [p for _, p in named], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [n for (n, _), g in zip(named, grads) if g is not None], below_modules


def parameters_below(model: nn.Module, layer_name: str, example: Tensor) -> list[str]:
    """Names of the parameters that influence the output of ``layer_name`` (see :func:`split_model`)."""
    return split_model(model, layer_name, example)[0]


def latent_shape(model: nn.Module, layer_name: str, input_shape: Iterable[int]) -> tuple[int, ...]:
    """Shape of one sample's activation at ``layer_name`` (a forward pass on zeros)."""
    x = torch.zeros(1, *[int(d) for d in input_shape], device=model_device(model))
    return tuple(compute_latents(model, find_layer(model, layer_name), x).shape[1:])


@torch.no_grad()
def output_size(model: nn.Module, x: Tensor) -> int:
    """Units of ``model``'s output for the inputs ``x`` (moved to the model's device; eval mode, no
    gradient; the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        return int(model(x.to(model_device(model))).shape[-1])
    finally:
        model.train(was_training)


class LatentCut:
    """The surgery of latent replay on one model: inject rows at the cut, freeze or slow the layers below.

    :meth:`attach` finds the latent layer; rows given to :meth:`inject` are appended to its
    output in the next forward pass, so the layers above see ``B + R`` rows. The forward hook
    that appends them exists only from :meth:`inject` to :meth:`check_injected`: the model
    carries no hook between minibatches, so it pickles, copies and checkpoints as a plain
    module, and the cut's whole state is :meth:`state_dict` (names and flags). After
    :meth:`freeze_below` the parameters below the cut (those that influence the layer's
    output, found by :meth:`split`) are frozen and their batch-norm / dropout
    modules kept in eval mode, or, with ``lower_lr_factor = f > 0``, every optimizer step
    is scaled by $f$ there: between :meth:`before_step` and :meth:`after_step`,
    $\\theta \\leftarrow \\theta_{old} + f\\,(\\theta - \\theta_{old})$.

    Example:
        >>> cut = LatentCut("features")
        >>> cut.attach(model)                                              # doctest: +SKIP
        >>> cut.inject(z_old)               # appended to model.features' output # doctest: +SKIP
        >>> logits = model(x_new)           # len(x_new) + len(z_old) rows       # doctest: +SKIP

    Args:
        latent_layer: name of the submodule whose output is the cut (as in ``named_modules()``).
        lower_lr_factor: once frozen, fraction of each update applied below the cut (0 = frozen, in [0, 1)).

    Raises:
        ValueError: ``latent_layer`` is not a name or ``lower_lr_factor`` is outside [0, 1).
    """

    def __init__(self, latent_layer: str, lower_lr_factor: float = 0.0):
        if not latent_layer or not isinstance(latent_layer, str):
            raise ValueError(f"latent_layer must be a layer name, got {latent_layer!r}")
        if not 0.0 <= lower_lr_factor < 1.0:
            raise ValueError(f"lower_lr_factor must be in [0, 1), got {lower_lr_factor}")
        self.latent_layer = latent_layer
        self.lower_lr_factor = float(lower_lr_factor)
        #: names of the parameters below the cut, and of the modules that run before its output is ready.
        self.lower_names: list[str] = []
        self.lower_modules: list[str] = []
        self.split_done = False
        #: whether :meth:`freeze_below` has run (the layers below are frozen or slowed down).
        self.frozen = False
        self.layer: Optional[nn.Module] = None
        self._handle: Optional[Any] = None
        self._pending: Optional[Tensor] = None
        self._snapshot: list[Tensor] = []

    # --------------------------------------------------------------- injection
    def attach(self, model: nn.Module) -> nn.Module:
        """Check that ``model`` can be cut at ``latent_layer`` and remember that layer for :meth:`inject`.

        Raises:
            LatentLayerError: a multi-task model (one head per task) or no such layer.
        """
        from avalanche.models import MultiTaskModule

        if isinstance(model, MultiTaskModule):
            raise LatentLayerError(
                "latent replay needs a single-head model (class or domain scenario); "
                f"got a multi-task {type(model).__name__}"
            )
        layer = find_layer(model, self.latent_layer)
        if layer is not self.layer:
            self.detach()
            self.layer = layer
        return layer

    def detach(self) -> None:
        """Forget the layer (and remove the injection hook if rows are pending)."""
        self._release()
        self._pending = None
        self.layer = None

    def inject(self, rows: Tensor) -> None:
        """Append ``rows`` to the latent layer's output in the next forward pass.

        Raises:
            RuntimeError: :meth:`attach` has not run.
        """
        if self.layer is None:
            raise RuntimeError("call attach(model) before inject(rows)")
        self._pending = rows
        if self._handle is None:
            self._handle = self.layer.register_forward_hook(self._append_pending)

    def check_injected(self) -> None:
        """Remove the injection hook; raise if rows given to :meth:`inject` were not used by the
        forward pass that just ran."""
        self._release()
        if self._pending is not None:
            self._pending = None
            raise LatentLayerError(
                f"the latent layer {self.latent_layer!r} was not run in the forward pass, so the replayed "
                "latents could not be injected"
            )

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None

    def _append_pending(self, module: nn.Module, inputs: Any, output: Tensor) -> Optional[Tensor]:
        if self._pending is None:
            return None
        extra, self._pending = self._pending, None
        return torch.cat([output, extra.to(output.device, output.dtype).reshape(-1, *output.shape[1:])])

    def latents(self, model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
        """Activations of the latent layer for inputs ``x`` (see :func:`compute_latents`)."""
        return compute_latents(model, self.attach(model), x, batch_size=batch_size)

    # ---------------------------------------------------------------- freezing
    def split(self, model: nn.Module, example: Tensor) -> None:
        """Find the parameters and modules below the cut (:func:`split_model` on ``example``, a small input batch)."""
        self.lower_names, self.lower_modules = split_model(model, self.latent_layer, example)
        self.split_done = True

    def freeze_below(self, model: nn.Module) -> None:
        """Freeze (or, with ``lower_lr_factor > 0``, slow down) the layers below the cut found by :meth:`split`.

        Raises:
            RuntimeError: :meth:`split` has not run.
        """
        if not self.split_done:
            raise RuntimeError("call split(model, example) before freeze_below(model)")
        if self.lower_lr_factor == 0.0:
            params = dict(model.named_parameters())
            for n in self.lower_names:
                params[n].requires_grad_(False)
                params[n].grad = None
        self.frozen = True
        self.hold_frozen(model)

    def hold_frozen(self, model: nn.Module) -> None:
        """Put the frozen modules below the cut back in eval mode (batch norm, dropout stop changing)."""
        if not self.frozen or self.lower_lr_factor > 0.0:
            return
        below = set(self.lower_modules)
        for name, module in model.named_modules():
            if name in below:
                module.eval()

    def before_step(self, model: nn.Module) -> None:
        """Remember the parameters below the cut before an optimizer step (slowed-down mode only)."""
        if self.frozen and self.lower_lr_factor > 0:
            params = dict(model.named_parameters())
            self._snapshot = [params[n].detach().clone() for n in self.lower_names]

    def after_step(self, model: nn.Module) -> None:
        """Scale the step just taken below the cut by ``lower_lr_factor``."""
        if self._snapshot:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for n, old in zip(self.lower_names, self._snapshot):
                    p = params[n]
                    p.copy_(old + self.lower_lr_factor * (p - old))
            self._snapshot = []

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"lower_names": list(self.lower_names), "lower_modules": list(self.lower_modules),
                "split_done": self.split_done, "lower_frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lower_names = list(state["lower_names"])
        self.lower_modules = list(state["lower_modules"])
        self.split_done = bool(state["split_done"])
        self.frozen = bool(state["lower_frozen"])


__all__ = [
    "LatentCapture",
    "LatentCut",
    "LatentLayerError",
    "compute_latents",
    "find_layer",
    "latent_shape",
    "model_device",
    "output_size",
    "parameters_below",
    "split_model",
]
