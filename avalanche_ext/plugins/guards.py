"""Plugins every run gets: stop on a non-finite loss."""

from __future__ import annotations

import math
from typing import Any

from avalanche.core import SupervisedPlugin


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class FiniteLossGuard(SupervisedPlugin):
    """Raise :class:`NonFiniteLossError` as soon as the loss is NaN or inf (before the update)."""

    def before_backward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        loss = float(strategy.loss.detach())
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss is {loss} at experience {strategy.clock.train_exp_counter}, "
                f"epoch {strategy.clock.train_exp_epochs}; lower the learning rate or check the data"
            )
