"""Stopping a run on SIGINT, SIGTERM or a stop file, so that it ends KILLED with its checkpoint kept.

Inside :func:`interrupts_raise` both signals raise :class:`RunInterrupted` in the main thread
(instead of a ``KeyboardInterrupt`` traceback, or SIGTERM's silent death). A signal that
arrives during a write to the tracking store raises once the write is complete
(:mod:`avalanche_ext.logging.shield`); while the run is being ended, a second signal is
ignored so that the end is written. :class:`StopWatch` is a
plugin that raises it when a stop file appears: a taxonomy stops the runs of its worker
processes that way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from typing import Any, Iterator, Optional

from avalanche.core import SupervisedPlugin

from ..logging import shield

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """A run (or a taxonomy) was asked to stop: by SIGINT, SIGTERM or its stop file.

    A ``BaseException``, like ``KeyboardInterrupt``: code that turns exceptions into failed
    results lets it through. Whoever ends the run fills in what the user needs to continue.

    Attributes:
        signum: the signal (SIGTERM for a stop file).
        run_id: the MLflow run that was ended KILLED (None if none was started yet).
        checkpoint: the checkpoint kept for ``--resume`` (None if there is none).
    """

    def __init__(self, signum: int, why: Optional[str] = None):
        self.signum = int(signum)
        self.why = why or signal.Signals(self.signum).name
        self.run_id: Optional[str] = None
        self.checkpoint: Optional[str] = None
        self.runs_killed: int = 0
        super().__init__(self.why)

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by the signal: 128 + its number."""
        return 128 + self.signum


def _raise(signum: int, frame: Any) -> None:
    for s in _SIGNALS:
        signal.signal(s, signal.SIG_IGN)  # the run is being ended: let that finish
    if shield.defer(functools.partial(_raise_now, signum)):
        return  # a write to the tracking store is under way: raise once it is complete
    _raise_now(signum)


def _raise_now(signum: int) -> None:
    raise RunInterrupted(signum)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise :class:`RunInterrupted`; the previous handlers come back after.

    Does nothing outside the main thread (Python delivers signals there only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s in _SIGNALS:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_interrupts() -> None:
    """Ignore SIGINT and SIGTERM until :func:`interrupts_raise` restores the handlers (while a run ends)."""
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)


class StopWatch(SupervisedPlugin):
    """Raises :class:`RunInterrupted` at the next training or evaluation iteration once ``stop_file`` exists.

    It has no state to save (its ``state_dict`` is empty), so a checkpoint never holds it.

    Args:
        stop_file: the file whose appearance stops the run.
    """

    def __init__(self, stop_file: str):
        super().__init__()
        self.stop_file = stop_file

    def _check(self) -> None:
        if os.path.exists(self.stop_file):
            raise RunInterrupted(signal.SIGTERM, f"stop file {self.stop_file}")

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._check()

    def after_eval_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._check()

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._check()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
