"""Calls to a tracking store that may fail for a while: retried within a time budget, then given up.

MLflow's own HTTP client retries a failed request 7 times with exponential back-off and waits
up to 120 s for each answer, so that one call to a server gone for good blocks for minutes.
:func:`bound_http_client` makes each request fail fast instead (no retry inside MLflow, a short
timeout), and :class:`RetryingCalls` retries transient failures itself until the budget is
spent, then raises :class:`TrackingLostError`, after which a run writes to its spool
(:mod:`avalanche_ext.logging.spool`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .shield import shielded

#: MLflow error codes of failures that may pass (a server restarting, a locked database, rate limits).
_TRANSIENT_CODES = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED",
                              "DEADLINE_EXCEEDED", "ENDPOINT_NOT_FOUND"})


class TrackingLostError(RuntimeError):
    """The tracking store kept failing for longer than the retry budget."""


def bound_http_client(budget_s: float) -> None:
    """Make each of MLflow's HTTP requests fail fast, so that ``budget_s`` is what bounds a call.

    Sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (a quarter of
    the budget, between 2 and 30 s) unless they are set already; MLflow reads both at each request.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(2, min(30, int(budget_s / 4)))))


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` may pass if the call is tried again (a connection, a timeout, a locked database)."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in _TRANSIENT_CODES
    if isinstance(error, OSError):
        return True
    module = type(error).__module__
    return module.startswith(("requests", "urllib3", "sqlalchemy"))


def describe(error: BaseException) -> str:
    """The first line of ``error``, short enough for one line of output."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


class RetryingCalls:
    """Call a function, retrying transient failures with back-off for at most ``budget_s`` seconds.

    Example:
        >>> calls = RetryingCalls(60.0)
        >>> calls(len, [1, 2])
        2

    Args:
        budget_s: how long one call may keep failing before :class:`TrackingLostError`.
        sleep, clock: for tests.
    """

    def __init__(self, budget_s: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.budget_s = float(budget_s)
        self._sleep = sleep
        self._clock = clock

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = None
        delay = 0.5
        while True:
            try:
                with shielded():  # a stop signal waits for the call to complete
                    return fn(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - sorted by is_transient below
                if not is_transient(error):
                    raise
                now = self._clock()
                start = now if start is None else start
                left = self.budget_s - (now - start)
                if left <= 0:
                    raise TrackingLostError(f"{describe(error)} (still failing after {self.budget_s:g} s)") from error
                self._sleep(min(delay, left))
                delay = min(delay * 2, 8.0)
