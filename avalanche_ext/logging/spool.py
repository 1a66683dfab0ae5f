"""What a run could not send to its tracking store, kept on disk until ``avalanche-ext sync`` sends it.

A spool is an append-only JSON-lines file: one record per line, each written, flushed and
synced to disk before the call returns, so that a crash loses at most the line being written
(a torn last line is skipped on reading). Files a run meant to upload (artifacts, the model)
are copied into a folder beside it (``<spool>.files/``). Records:

* ``{"op": "run", "run_id", "tracking_uri", "experiment", "run_name", "tags", "reason"}``: the run
  the records belong to (written when the run goes offline; ``run_id`` is None if it was never created);
* ``{"op": "metrics", "metrics": [[key, value, timestamp_ms, step], ...]}``;
* ``{"op": "params", "params": {...}}``, ``{"op": "tag", "key", "value"}``;
* ``{"op": "artifact", "file", "artifact_path"}``, ``{"op": "artifacts", "dir", "artifact_path"}``
  (paths relative to the spool's folder);
* ``{"op": "inputs", "datasets": [...]}`` (dataset inputs, see :mod:`avalanche_ext.logging.datasets`);
* ``{"op": "status", "status"}``: the run continues (RUNNING); ``{"op": "end", "status"}``: the final status.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from .shield import shielded


class Spool:
    """The spool file of one run.

    Args:
        path: the JSON-lines file (created, with its folder, at the first record).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = self.path.with_name(self.path.name + ".files")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record and sync it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with shielded(), open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def keep(self, src: str | Path) -> str:
        """Copy a file or folder into the spool's folder; returns its path relative to the spool's folder."""
        src = Path(src)
        n = len(list(self.files.iterdir())) if self.files.is_dir() else 0
        dest = self.files / f"{n:04d}" / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copy2(src, dest)
        return str(dest.relative_to(self.path.parent))


def read_spool(path: str | Path) -> list[dict[str, Any]]:
    """The records of a spool file, in order; a torn last line (a crash while writing) is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def spool_header(records: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The first ``run`` record of a spool."""
    return next((r for r in records if r.get("op") == "run"), None)
