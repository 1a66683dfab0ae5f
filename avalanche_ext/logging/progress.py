"""One line per epoch and per evaluation, for long runs."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO

from avalanche.logging import BaseLogger


class ProgressLogger(BaseLogger):
    """Print concise progress: experience, epoch, loss and accuracy, elapsed time.

    Args:
        prefix: text put in front of every line (e.g. the recipe name).
        stream: where to print (standard error by default).
        n_experiences: length of the stream, shown as "exp i/n".
    """

    def __init__(self, prefix: str = "", stream: Optional[TextIO] = None, n_experiences: Optional[int] = None):
        super().__init__()
        self.prefix = prefix
        self.n_experiences = n_experiences or "?"
        self.stream = stream or sys.stderr
        self._t0 = time.time()
        self._last: dict[str, float] = {}

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if isinstance(value, (int, float)):
            self._last[name.split("/")[0] + "/" + name.split("/")[1] if "/" in name else name] = float(value)

    def _print(self, text: str) -> None:
        print(f"[{self.prefix} {time.time() - self._t0:6.1f}s] {text}", file=self.stream, flush=True)

    def after_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        loss = self._last.get("Loss_Epoch/train_phase", float("nan"))
        acc = self._last.get("Top1_Acc_Epoch/train_phase", float("nan"))
        self._print(
            f"exp {strategy.clock.train_exp_counter + 1}/{self.n_experiences} epoch "
            f"{strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs} loss {loss:.4f} acc {acc:.3f}"
        )

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        acc = self._last.get("Top1_Acc_Stream/eval_phase", float("nan"))
        self._print(f"eval after {strategy.clock.train_exp_counter} experience(s): stream acc {acc:.3f}")
