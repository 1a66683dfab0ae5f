"""Write docs/snippets/bad_inputs.md: every bad input of tests/bad_inputs.py and what the user sees.

    python scripts/bad_input_table.py            # rewrite the snippet
    python scripts/bad_input_table.py --check    # exit 1 if the snippet is out of date
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "snippets" / "bad_inputs.md"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bad_inputs import CASES, shown  # noqa: E402


def what_the_user_sees(argv: list[str]) -> tuple[int, str]:
    """Exit code and standard error of ``avalanche-ext ARGV`` (run in this process)."""
    from avalanche_ext.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        if "--tracking-uri" not in argv:
            argv = argv + ["--tracking-uri", f"sqlite:///{tmp}/m.db"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
    return code, err.getvalue().strip()


def table() -> str:
    lines = ["| bad input | command | exit code | what the user sees (standard error) |", "|---|---|---|---|"]
    for what, argv, _ in CASES:
        code, err = what_the_user_sees(argv)
        cell = err.replace("|", "\\|").replace("\n", "<br>")
        lines.append(f"| {what} | `{shown(argv)}` | {code} | `{cell}` |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    text = table()
    if args.check:
        if not SNIPPET.is_file() or SNIPPET.read_text() != text:
            print(f"{SNIPPET.relative_to(ROOT)} is out of date: run python scripts/bad_input_table.py", file=sys.stderr)
            return 1
        return 0
    SNIPPET.write_text(text)
    print(f"wrote {SNIPPET.relative_to(ROOT)} ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
