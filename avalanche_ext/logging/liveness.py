"""Whether a RUNNING run still has a live process, judged by the tags its logger writes.

A run of this tool carries ``avalanche_ext.heartbeat`` (Unix time, refreshed every 30 s of
training or evaluation and at the end of every epoch), ``avalanche_ext.pid`` and
``avalanche_ext.host``. A RUNNING run is **stale** when

* it was written from this machine and its process no longer exists, or
* its last heartbeat is older than ``stale_after_s`` (default 300 s, ten missed heartbeats).

A run without a heartbeat tag was not made by this tool (or by an older version) and is never stale.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Optional

from .mlflow_logger import HEARTBEAT_TAG, HOST_TAG, PID_TAG

#: Seconds without a heartbeat after which a RUNNING run is taken for dead.
STALE_AFTER_S = 300.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_reason(run: Any, stale_after_s: float = STALE_AFTER_S, now: Optional[float] = None) -> Optional[str]:
    """Why a RUNNING run of this tool has no live process (None if it may be alive, or is not RUNNING)."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or HEARTBEAT_TAG not in tags:
        return None
    now = time.time() if now is None else now
    pid = tags.get(PID_TAG, "")
    if tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return f"its process {pid} on {tags[HOST_TAG]} is gone"
    try:
        age = now - float(tags[HEARTBEAT_TAG])
    except ValueError:
        return None
    if age > stale_after_s:
        return f"no heartbeat for {age:.0f} s (more than {stale_after_s:g} s)"
    return None


def close_run(client: Any, run_id: str, why: str, status: str = "KILLED") -> None:
    """End a run that its process left RUNNING, with the reason as the ``killed_reason`` tag."""
    client.set_tag(run_id, "killed_reason", why[:5000])
    client.set_terminated(run_id, status=status)


def looks_alive(run: Any, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether another live process may still be writing ``run`` (on this machine: its process
    exists; elsewhere: its heartbeat is fresh). A run without a heartbeat, or of this process, is not."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or HEARTBEAT_TAG not in tags:
        return False
    if tags.get(HOST_TAG) == socket.gethostname() and tags.get(PID_TAG) == str(os.getpid()):
        return False
    return stale_reason(run, stale_after_s) is None
