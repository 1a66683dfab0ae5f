"""Replaying a spool into its tracking store (``avalanche-ext sync``): every record once, idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .spool import read_spool, spool_header
from .store import Tracking

#: The tag of a run made by ``sync`` because the spooled run does not exist in the store.
SYNCED_FROM_TAG = "avalanche_ext.synced_from"


@dataclass
class SyncResult:
    """What one spool's replay did."""

    spool: Path
    run_id: str
    new_run: bool
    metrics_sent: int
    metrics_present: int
    status: Optional[str]


def _target_run(client: Any, tracking: Tracking, header: dict[str, Any]) -> tuple[str, bool]:
    """The spooled run's id if the store has it; otherwise a new run with the same name and tags."""
    from mlflow.exceptions import MlflowException

    run_id = header.get("run_id")
    if run_id:
        try:
            client.get_run(run_id)
            return run_id, False
        except MlflowException:
            pass
    tags = {**(header.get("tags") or {}), SYNCED_FROM_TAG: str(run_id)}
    exp_id = tracking.experiment_id(header.get("experiment") or "avalanche-ext")
    return client.create_run(exp_id, run_name=header.get("run_name"), tags=tags).info.run_id, True


def replay_spool(path: str | Path, tracking: Optional[Tracking] = None) -> SyncResult:
    """Send the records of the spool at ``path`` to its store (or ``tracking``).

    Into the same run when the store has it, otherwise into a new run tagged
    :data:`SYNCED_FROM_TAG`. Metric points the run already has (same key, step and timestamp)
    are not sent again, nor parameters it has, so that replaying twice changes nothing. The
    final status is set last. The spool is left in place (the caller decides what to do with it).

    Raises:
        ValueError: the file is not a spool.
    """
    from mlflow.entities import Metric, Param

    path = Path(path)
    records = read_spool(path)
    header = spool_header(records)
    if header is None:
        raise ValueError(f"{path} is not a spool of avalanche-ext (no run record)")
    tracking = tracking or Tracking.connect(header["tracking_uri"])
    client = tracking.client
    run_id, new_run = _target_run(client, tracking, header)
    base = path.parent
    points: dict[str, list[tuple[float, int, int]]] = {}
    for r in records:
        if r["op"] == "metrics":
            for key, value, ts, step in r["metrics"]:
                points.setdefault(key, []).append((value, int(ts), int(step)))
    sent = present = 0
    batch: list = []
    for key, values in points.items():
        have = {(m.step, m.timestamp) for m in client.get_metric_history(run_id, key)}
        for value, ts, step in values:
            if (step, ts) in have:
                present += 1
                continue
            have.add((step, ts))
            batch.append(Metric(key, float(value), ts, step))
    for i in range(0, len(batch), 900):
        client.log_batch(run_id, metrics=batch[i : i + 900])
    sent = len(batch)
    existing = client.get_run(run_id).data.params
    status = None
    for r in records:
        op = r["op"]
        if op == "params":
            new = [Param(k, v) for k, v in r["params"].items() if k not in existing]
            if new:
                client.log_batch(run_id, params=new)
                existing.update({p.key: p.value for p in new})
        elif op == "tag":
            client.set_tag(run_id, r["key"], r["value"])
        elif op == "artifact":
            client.log_artifact(run_id, str(base / r["file"]), r.get("artifact_path"))
        elif op == "artifacts":
            client.log_artifacts(run_id, str(base / r["dir"]), r.get("artifact_path"))
        elif op == "inputs":
            from .datasets import dataset_inputs

            client.log_inputs(run_id, datasets=dataset_inputs(r["datasets"]))
        elif op in ("status", "end"):
            status = r["status"]
    if status is not None:
        if status == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        else:
            client.set_terminated(run_id, status=status)
    return SyncResult(path, run_id, new_run, sent, present, status)


def find_spools(paths: list[str | Path]) -> list[Path]:
    """The spool files among ``paths`` (files, or folders searched for ``*.jsonl``), oldest first."""
    found = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(f for f in p.rglob("*.jsonl") if f.is_file())
    return sorted(set(found), key=lambda f: f.stat().st_mtime)
