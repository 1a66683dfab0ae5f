"""Automatic mixed precision for any plain Avalanche SGD strategy, as a plugin."""

from __future__ import annotations

import functools
from typing import Any, Optional, Union

import torch
from avalanche.core import SupervisedPlugin

from ..devices import AMP_DTYPES
from .base import IncompatibleModelError


class IncompatibleTemplateError(TypeError):
    """The strategy runs its own training step, which the plugin cannot put under autocast and loss scaling."""


def _template_methods() -> dict[str, Any]:
    from avalanche.training.templates.base_sgd import BaseSGDTemplate
    from avalanche.training.templates.update_type.sgd_update import SGDUpdate

    return {"training_epoch": SGDUpdate.training_epoch, "backward": BaseSGDTemplate.backward,
            "optimizer_step": BaseSGDTemplate.optimizer_step}


class AutocastPlugin(SupervisedPlugin):
    """Run the forward pass in reduced precision (``torch.autocast``); with float16, scale the loss.

    Idea: matrix products and convolutions in bfloat16 or float16 run several times faster
    on recent GPUs and halve the activations' memory, while reductions and the loss stay in
    float32 (autocast picks the precision per operation). Float16 has a narrow range, so its
    gradients can underflow: the loss is multiplied by a scale :math:`s` before the backward
    pass and the gradients divided by it before the update; a step whose gradients overflow
    is skipped and :math:`s` halved, and :math:`s` doubles after 2000 steps without overflow
    (``torch.amp.GradScaler``). Bfloat16 has float32's range and needs no scaling.

    Maths (float16): :math:`g = \\frac{1}{s}\\nabla_\\theta (s\\,L(\\theta))`; the update
    :math:`\\theta \\leftarrow \\mathrm{opt}(\\theta, g)` is skipped when :math:`g` is not finite.

    What runs under autocast: the training forward pass, the loss and every plugin's
    ``before_backward`` (penalties, distillation); the backward pass and the update do not.
    In evaluation, the forward pass and the loss. The plugin takes over the template's
    ``backward`` and ``optimizer_step`` while ``train`` runs (so the order of the plugins does
    not matter), and wraps the epochs of training and evaluation so that a step that raises
    leaves no autocast region open: the loss is scaled in the backward pass and the gradients unscaled right
    after it, so every ``after_backward`` and ``before_update`` hook (masks, clipping,
    projections) sees the true gradients and ``strategy.loss`` (and the loss metrics) stays
    unscaled.

    Paper: P. Micikevicius et al., *Mixed Precision Training*, ICLR 2018,
    https://arxiv.org/abs/1710.03740.

    Scenarios: any; the strategy must use Avalanche's own training step (``SGDUpdate``'s
    epoch, the template's ``backward`` and ``optimizer_step``). Strategies whose plugins run
    their own backward passes inside the step (GEM, A-GEM, MIR) or whose template trains in
    phases of its own are not for it: their recipes declare ``amp=False``.

    Example:
        >>> strategy = Naive(model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(),
        ...                  device="cuda", plugins=[AutocastPlugin("bf16")])
        >>> for exp in benchmark.train_stream:
        ...     strategy.train(exp)

    Args:
        dtype: ``"bf16"`` / ``torch.bfloat16`` or ``"fp16"`` / ``torch.float16``. The device
            type is the strategy's (bfloat16 runs on CUDA and the CPU; float16 is meant for CUDA).
        in_eval: autocast the evaluation's forward pass too.

    Raises:
        ValueError: another ``dtype``.
        IncompatibleTemplateError: the strategy runs its own training step (before training).
        IncompatibleModelError: a multi-task model that uses Avalanche's ``MultiTaskModule.forward``
            (it writes the heads' reduced-precision outputs into a float32 tensor), before training
            or evaluation.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = "bf16", in_eval: bool = True):
        super().__init__()
        dtype = AMP_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
        if dtype not in AMP_DTYPES.values():
            raise ValueError(f"dtype must be 'bf16' or 'fp16' (torch.bfloat16 or torch.float16), got {dtype!r}")
        self.dtype: torch.dtype = dtype
        self.in_eval = bool(in_eval)
        self.scaler: Optional[torch.amp.GradScaler] = None
        self._scaler_state: Optional[dict[str, Any]] = None
        self._region: Optional[torch.autocast] = None
        self._strategy: Any = None

    @property
    def scales_loss(self) -> bool:
        """Float16 scales the loss; bfloat16 does not need to."""
        return self.dtype == torch.float16

    # ----- the autocast region --------------------------------------------------------
    def _open(self, strategy: Any) -> None:
        self._close()
        self._region = torch.autocast(torch.device(strategy.device).type, dtype=self.dtype)
        self._region.__enter__()

    def _close(self) -> None:
        if self._region is not None:
            region, self._region = self._region, None
            region.__exit__(None, None, None)

    # ----- training -------------------------------------------------------------------
    def _check_model(self, strategy: Any) -> None:
        from avalanche.models import MultiTaskModule

        model = strategy.model
        if isinstance(model, MultiTaskModule) and type(model).forward is MultiTaskModule.forward:
            raise IncompatibleModelError(
                f"AutocastPlugin: {type(model).__name__} uses Avalanche's MultiTaskModule.forward, which writes each "
                f"task's {str(self.dtype).removeprefix('torch.')} output into a float32 tensor and fails under "
                f"autocast; give the model a forward that keeps the heads' dtype, or train without the plugin")

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._check_model(strategy)
        own = [name for name, method in _template_methods().items() if getattr(type(strategy), name) is not method]
        if own:
            raise IncompatibleTemplateError(
                f"AutocastPlugin needs Avalanche's own training step, and {type(strategy).__name__} overrides "
                f"{', '.join(own)}; train it without the plugin")
        if self.scales_loss and self.scaler is None:
            self.scaler = torch.amp.GradScaler(torch.device(strategy.device).type)
            if self._scaler_state is not None:
                self.scaler.load_state_dict(self._scaler_state)
                self._scaler_state = None
        self._strategy = strategy
        strategy.backward = self._backward  # instance attributes: removed again in after_training
        strategy.optimizer_step = self._optimizer_step
        strategy.training_epoch = functools.partial(self._epoch, strategy, "training_epoch")

    def _epoch(self, strategy: Any, name: str, **kwargs: Any) -> None:
        """The template's epoch ``name`` (of training or evaluation); the autocast region is closed
        however the epoch ends (a step may raise)."""
        try:
            getattr(type(strategy), name)(strategy, **kwargs)
        finally:
            self._close()

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._open(strategy)

    def _backward(self) -> None:
        """The template's backward pass, outside autocast; float16: scaled, then the gradients unscaled."""
        self._close()
        strategy = self._strategy
        if self.scaler is None:
            strategy.loss.backward(retain_graph=strategy.retain_graph)
            return
        self.scaler.scale(strategy.loss).backward(retain_graph=strategy.retain_graph)
        self.scaler.unscale_(strategy.optimizer)

    def _optimizer_step(self) -> None:
        """The template's update; float16: skipped when the gradients are not finite."""
        if self.scaler is None:
            self._strategy.optimizer.step()
        else:
            self.scaler.step(self._strategy.optimizer)

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.scaler is not None:
            self.scaler.update()

    def after_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._close()
        for name in ("backward", "optimizer_step", "training_epoch"):
            strategy.__dict__.pop(name, None)
        self._strategy = None

    # ----- evaluation -----------------------------------------------------------------
    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.in_eval:
            self._check_model(strategy)
            strategy.eval_epoch = functools.partial(self._epoch, strategy, "eval_epoch")  # removed in after_eval

    def before_eval_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.in_eval:
            self._open(strategy)

    def after_eval_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._close()

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._close()
        strategy.__dict__.pop("eval_epoch", None)

    # ----- state ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The dtype and, for float16, the loss scaler's state (its scale and growth counter)."""
        scaler = self.scaler.state_dict() if self.scaler is not None else self._scaler_state
        return {"dtype": str(self.dtype).removeprefix("torch."), "scaler": scaler}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the scaler's state is applied when it is made)."""
        self.dtype = getattr(torch, state["dtype"])
        if state.get("scaler"):
            if self.scaler is not None:
                self.scaler.load_state_dict(state["scaler"])
            else:
                self._scaler_state = dict(state["scaler"])


__all__ = ["AutocastPlugin", "IncompatibleTemplateError"]
