"""Append one row to a CSV file that grows as runs finish, writing the header when the file is new."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence


def append_row(path: Path, fieldnames: Sequence[str], row: dict[str, Any]) -> None:
    """Append ``row`` (keys ``fieldnames``) to ``path`` and flush it, so that a kill right after loses nothing."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames))
        if new:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
