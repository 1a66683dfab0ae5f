"""Writing one run to its tracking store, or to a local spool once the store has failed for too long."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from .resilient import RetryingCalls, TrackingLostError, bound_http_client
from .spool import Spool
from .store import Tracking


class RunWriter:
    """Sends a run's records to the tracking store; past the retry budget, spools them instead.

    Every write is tried against the store with :class:`~avalanche_ext.logging.resilient.RetryingCalls`;
    the first one that keeps failing for ``budget_s`` seconds turns the writer offline: that
    record and every later one go to the spool (nothing is dropped, and no later call waits
    again). ``avalanche-ext sync`` sends the spool once the store is back.

    Args:
        tracking: the store.
        budget_s: how long one call may keep failing before the writer goes offline.
        spool_path: where the spool goes (a callable gets the run id and returns it).
        header: what the spool's ``run`` record says besides the run id (experiment, run name, tags).
    """

    def __init__(self, tracking: Tracking, budget_s: float, spool_path: Callable[[Optional[str]], Path],
                 header: dict[str, Any]):
        bound_http_client(budget_s)
        self.tracking = tracking
        self.calls = RetryingCalls(budget_s)
        self._spool_path = spool_path
        self._header = header
        self.run_id: Optional[str] = None
        self.spool: Optional[Spool] = None
        #: why the writer went offline (None while the store answers).
        self.offline_reason: Optional[str] = None

    @property
    def offline(self) -> bool:
        return self.offline_reason is not None

    def go_offline(self, reason: str) -> None:
        """From now on, records go to the spool; its ``run`` record is written first."""
        if self.offline:
            return
        self.offline_reason = reason
        self.spool = Spool(self._spool_path(self.run_id))
        self.spool.append({"op": "run", "run_id": self.run_id, "tracking_uri": self.tracking.uri,
                           "reason": reason, **self._header})

    def ask(self, fn: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """A read from the store (``default`` when offline or when the store fails past the budget)."""
        if self.offline:
            return default
        try:
            return self.calls(fn, *args, **kwargs)
        except TrackingLostError as e:
            self.go_offline(str(e))
            return default

    def send(self, record: Callable[[Spool], dict[str, Any]], fn: Callable[..., Any], *args: Any,
             **kwargs: Any) -> bool:
        """Call ``fn(*args)`` on the store; offline, append ``record(spool)`` to the spool. True if sent."""
        if not self.offline:
            try:
                self.calls(fn, *args, **kwargs)
                return True
            except TrackingLostError as e:
                self.go_offline(str(e))
        self.spool.append(record(self.spool))
        return False
