"""Write a generated docs snippet, or check that the committed one is what its generator gives now."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, *, check: bool, command: str) -> int:
    """Write ``text`` to ``path``; with ``check``, only compare: 1 (and a line on stderr naming
    ``command``, the call that rewrites it) if the file is missing or differs, else 0."""
    if not check:
        path.write_text(text)
        return 0
    if path.is_file() and path.read_text() == text:
        return 0
    print(f"{path} is out of date: run {command}", file=sys.stderr)
    return 1
