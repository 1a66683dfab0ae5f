"""The hand-number check: a docs page takes its accuracies from a report, never from typed text.

A page shows a measured number by including a committed report or perf record (``--8<-- "..."``) or by
linking to it; the leaderboards and the fidelity page are written from the reports by
``avalanche-ext leaderboard``. An accuracy typed into a page's prose or tables (``91.8%``,
``45.40 ± 4.03``) goes stale the day the report is made again, so this test counts them.

Pages written before this check still hold typed numbers; :data:`TYPED_BEFORE` caps each of them at
its count then, so that the count can only go down as the pages move to included records. Every
other page must hold none. A published number belongs in ``docs/results/references.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Written by a command from the reports or perf records (or a report folder itself), each checked
#: up to date by its own test (tests/test_latent_docs.py, tests/test_run_records_table.py): never hand-typed.
GENERATED = ("results/", "snippets/runs_", "snippets/latent_family_")

#: An accuracy-like number: a percentage or a "mean ± spread".
NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d+)?\s?%|\d+\.\d+\s?(?:±|\+-|\+/-)\s?\d+(?:\.\d+)?")

#: Typed numbers per page when the check came in; lower a cap when a page moves to included records.
TYPED_BEFORE: dict[str, int] = {}


def typed_numbers(text: str) -> list[str]:
    """The accuracy-like numbers of a Markdown text outside code blocks, inline code and snippet includes."""
    found, in_code = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
            continue
        if in_code or line.lstrip().startswith("--8<--"):
            continue
        found += NUMBER.findall(re.sub(r"`[^`]*`", "", line))
    return found


def _pages() -> dict[str, list[str]]:
    return {str(p.relative_to(DOCS)): typed_numbers(p.read_text()) for p in sorted(DOCS.rglob("*.md"))
            if not str(p.relative_to(DOCS)).startswith(GENERATED)}


def test_the_check_finds_typed_accuracies_and_skips_code_and_includes():
    text = ("EWC reaches 19.17 ± 0.68 here and 91.8% there; 45.4 +- 4.0 too.\n"
            "```bash\nacc 99.5%\n```\n`--set lr=0.5` and --8<-- \"docs/results/x/recipes/ewc.md\"\n"
            "--8<-- \"docs/results/split_mnist5k/recipes/ewc.md\"\n"
            "4 epochs, batch 32, 5,000 images, version 0.6.0, the 2019 paper.\n")
    assert typed_numbers(text) == ["19.17 ± 0.68", "91.8%", "45.4 +- 4.0"]


def test_no_page_types_more_accuracies_than_it_did():
    pages = _pages()
    over = {page: f"{len(found)} typed (allowed {TYPED_BEFORE.get(page, 0)}): {found[:5]}"
            for page, found in pages.items() if len(found) > TYPED_BEFORE.get(page, 0)}
    assert not over, ("docs pages type accuracies by hand; include the report or perf record instead "
                      f"(--8<-- \"docs/results/<benchmark>/recipes/<recipe>.md\"): {over}")
    stale = [page for page in TYPED_BEFORE if page not in pages]
    assert not stale, f"TYPED_BEFORE names pages that no longer exist: {stale}"
    loose = {page: f"{len(pages[page])} typed, cap {cap}" for page, cap in TYPED_BEFORE.items()
             if len(pages[page]) < cap}
    assert not loose, f"pages type fewer numbers than their cap; lower TYPED_BEFORE to the count (0: drop it): {loose}"


def test_leaderboards_and_fidelity_page_are_those_the_reports_give(tmp_path):
    """The generated pages are committed as ``avalanche-ext leaderboard`` writes them from the committed reports."""
    from avalanche_ext.leaderboards import write_pages

    written = write_pages(ROOT, out=str(tmp_path / "leaderboards"), fidelity=str(tmp_path / "fidelity.md"),
                          selection=str(tmp_path / "selection.md"))
    committed = {p: DOCS / "results" / p.relative_to(tmp_path) for p in written}
    stale = [p.name for p in written if p.read_text() != committed[p].read_text()]
    assert not stale, f"run `avalanche-ext leaderboard` (make results-pages) and commit the pages: {stale} differ"
