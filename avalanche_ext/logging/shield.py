"""Writes that a stop signal must not cut in half.

A signal handler that raises (SIGINT, SIGTERM: :mod:`avalanche_ext.runner.interrupt`) can fire
between any two bytecodes, also in the middle of a SQLAlchemy transaction against a SQLite
tracking store. The half-done transaction can keep its connection, and the store's write
lock, until the garbage collector finds it; the run's next write, the one that ends it
KILLED, then waits on the lock and MLflow logs a ``database is locked`` traceback.

Inside :func:`shielded` a handler calls :func:`defer` instead of raising: the raise happens
when the outermost shielded block ends, after the write is complete. Only the main thread's
blocks count, since Python runs signal handlers there.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, Optional

_state = threading.local()


def _depth() -> int:
    return getattr(_state, "depth", 0)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Within: a deferred interrupt (:func:`defer`) waits for the block to end, then raises."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if _state.depth == 0:
            pending: Optional[Callable[[], None]] = getattr(_state, "pending", None)
            _state.pending = None
            if pending is not None:
                pending()


def defer(action: Callable[[], None]) -> bool:
    """Inside a shielded block: keep ``action`` for the block's end and return True; outside: False.

    A later action replaces an earlier one (only one interrupt is acted on).
    """
    if _depth() == 0:
        return False
    _state.pending = action
    return True
