"""The documentation site builds strictly, covers every recipe, and its code examples run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from avalanche_ext.registry import all_recipes

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


def test_every_recipe_has_a_method_page():
    missing = [r.name for r in all_recipes() if not (ROOT / "docs" / "methods" / f"{r.name}.md").is_file()]
    assert not missing, f"recipes without docs/methods/<name>.md: {missing}"


def test_every_recipe_page_is_in_the_generated_nav():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        from methods_nav import methods_nav
    finally:
        sys.path.pop(0)
    nav = methods_nav(ROOT / "docs")
    listed = {path for section in nav for pages in section.values() for page in pages for path in page.values()}
    assert listed == {f"methods/{r.name}.md" for r in all_recipes()}
    assert [next(iter(s)) for s in nav] == ["Baselines", "Replay", "Regularization", "Architectural", "Hybrid"]


def test_no_page_keeps_a_placeholder():
    """A page is finished text: no line that is only an upper-case placeholder such as ``RESULTS``."""
    pages = [p for p in (ROOT / "docs").rglob("*.md") if "results" not in p.relative_to(ROOT / "docs").parts[:1]]
    left = [f"{p.relative_to(ROOT)}:{i}: {line}" for p in pages
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.fullmatch(r"[A-Z][A-Z_]{3,}", line.strip())]
    assert not left, "placeholders left in the docs:\n" + "\n".join(left)


def test_bad_input_table_of_the_reliability_page_is_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bad_input_table.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example, tmp_path):
    """Run from a temporary folder so that whatever an example writes stays there."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
