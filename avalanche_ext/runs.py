"""``avalanche-ext runs --close-stale`` and ``avalanche-ext sync``: runs left behind, records not yet sent.

``close_stale`` ends as KILLED the runs this tool left RUNNING without a live process (the rule is
:func:`avalanche_ext.logging.liveness.stale_reason`); ``sync`` replays spools written while the
tracking store was away (:func:`avalanche_ext.logging.sync.replay_spool`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from .logging import Tracking
from .logging.liveness import STALE_AFTER_S, close_run, stale_reason
from .logging.sync import SyncResult, find_spools, replay_spool


def close_stale(tracking: Tracking, stale_after_s: float = STALE_AFTER_S, dry_run: bool = False) -> list[tuple[str, str, str]]:
    """End every stale RUNNING run of the store as KILLED; returns ``(run id, run name, why)`` of each."""
    client = tracking.client
    closed = []
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return closed
    for run in client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=5000):
        why = stale_reason(run, stale_after_s)
        if why is None:
            continue
        if not dry_run:
            close_run(client, run.info.run_id, f"closed by avalanche-ext runs --close-stale: {why}")
        closed.append((run.info.run_id, run.info.run_name or "", why))
    return closed


def sync(paths: list[str], tracking_uri: Optional[str] = None) -> list[SyncResult]:
    """Replay the spools found under ``paths``; each one replayed whole is renamed ``*.synced``."""
    tracking = Tracking.connect(tracking_uri) if tracking_uri else None
    results = []
    for spool in find_spools(paths):
        result = replay_spool(spool, tracking)
        spool.rename(spool.with_name(spool.name + ".synced"))
        results.append(result)
    return results


def print_sync(results: list[SyncResult]) -> None:
    for r in results:
        where = f"a new run {r.run_id} (the spooled run is not in this store)" if r.new_run else f"run {r.run_id}"
        print(f"{r.spool}: {r.metrics_sent} metric point(s) sent ({r.metrics_present} already there) into {where}; "
              f"status {r.status or 'unchanged'}", file=sys.stderr)


def spool_paths_default() -> list[str]:
    """Where spools are written by default: ``.avalanche-ext/`` (checkpoints and ``spool/``)."""
    return [str(Path(".avalanche-ext"))]
