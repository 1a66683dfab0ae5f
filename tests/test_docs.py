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
    # the maths is rendered to MathML at build time: no page is left with raw LaTeX delimiters
    pages = list((tmp_path / "site").rglob("*.html"))
    raw = [str(p.relative_to(tmp_path)) for p in pages if '<span class="arithmatex">' in p.read_text()
           or '<div class="arithmatex">' in p.read_text()]
    assert not raw, f"pages with unrendered maths: {raw}"
    assert "<math" in (tmp_path / "site" / "methods" / "hnet" / "index.html").read_text()


def test_math_hook_renders_inline_and_block_and_names_a_bad_formula():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import mathml as hook
    finally:
        sys.path.pop(0)
    out = hook.render('<p><span class="arithmatex">\\(\\lambda &lt; 1\\)</span></p>'
                      '<div class="arithmatex">\\[\\frac{a}{b}\\]</div>', "page.md")
    assert 'display="inline"' in out and 'display="block"' in out and "<mfrac>" in out and "&#x0003C;" in out
    assert "arithmatex" not in out
    with pytest.raises(ValueError, match="page.md"):  # malformed
        hook.render('<span class="arithmatex">\\(a^\\)</span>', "page.md")
    with pytest.raises(ValueError, match="foo"):  # a command the converter would print as text
        hook.render('<span class="arithmatex">\\(\\foo x\\)</span>', "page.md")
    argmin = re.sub(r"<[^>]+>", "", hook.render('<span class="arithmatex">\\(\\arg\\min_x f\\)</span>', "p.md"))
    assert re.match(r"arg.{0,12}minxf$", argmin), argmin  # rewritten to an operator, not printed as \\arg


def test_math_hook_renders_the_restructuredtext_forms_of_docstrings():
    """``:math:`x``` and ``.. math::`` (as mkdocstrings renders them) become MathML like ``$x$`` and ``$$x$$``."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import mathml as hook
    finally:
        sys.path.pop(0)
    role = hook.render("<p>task :math:<code>\\Theta^*_{t}</code> is kept</p>", "api.md")
    assert role.startswith("<p>task <math") and 'display="inline"' in role and "<msubsup>" in role
    assert ":math:" not in role and "<code>" not in role
    directive = "<p>.. math::\n    L = \\frac{\\beta}{T-1} \\sum_t x_t</p>"
    code_block = "<p>.. math::</p>\n<div class=\"highlight\"><pre><span></span><code>L = \\frac{\\beta}{T-1}\n</code></pre></div>"
    for text in (directive, code_block):
        out = hook.render(text + "\n<p>where</p>", "api.md")
        assert out.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'), out
        assert "<mfrac>" in out and "math::" not in out and "\\frac" not in out and out.endswith("<p>where</p>")
    with pytest.raises(ValueError, match="api.md"):
        hook.render(":math:<code>\\foo x</code>", "api.md")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example, tmp_path):
    """Run from a temporary folder so that whatever an example writes stays there."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _doc_value(cell: str):
    """The value a hyper-parameter cell shows: ``1000``, ``0.001``, `` `adam` ``, ``[10, 10]``, ``True``."""
    cell = cell.strip()
    head = re.match(r"(`[^`]*`|\[[^\]]*\]|\S+)", cell).group(1).strip("`")
    for cast in (int, float):
        try:
            return cast(head)
        except ValueError:
            pass
    if head.startswith("["):
        return [_doc_value(v) for v in head.strip("[]").split(",") if v.strip()]
    return {"true": True, "false": False}.get(head.lower(), head)


def _same(doc, value) -> bool:
    if isinstance(value, bool) or isinstance(doc, bool):
        return doc == value or str(doc).lower() == str(value).lower()
    if isinstance(value, (int, float)) and isinstance(doc, (int, float)):
        return abs(doc - value) <= 1e-9 * max(1.0, abs(value))
    if isinstance(value, (list, tuple)):
        return isinstance(doc, list) and len(doc) == len(value) and all(_same(d, v) for d, v in zip(doc, value))
    return str(doc) == str(value)


def test_hyper_parameter_tables_match_the_recipes():
    """Every value in a method page's hyper-parameter table is what the recipe resolves to."""
    from avalanche_ext.benchmarks import BENCHMARKS

    stale = []
    for recipe in all_recipes():
        lines = (ROOT / "docs" / "methods" / f"{recipe.name}.md").read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("| hyper-parameter | default |"):
                continue
            header = [c.strip().strip("`") for c in line.strip("|").split("|")]
            for row in lines[i + 2:]:
                if not row.startswith("| `"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                keys = [k.strip().strip("`") for k in cells[0].split(",")]  # `a`, `b` | 1, 2
                for column, cell in zip(header[1:], cells[1:]):
                    if column not in ("default", *BENCHMARKS) or cell in ("–", "-", "") \
                            or cell.startswith(("same", "common")):
                        continue
                    shown = [cell] if len(keys) == 1 else re.split(r",\s*(?![^\[]*\])", cell)
                    for key, text in zip(keys, shown):
                        value = recipe.defaults(None if column == "default" else column).get(key, "(absent)")
                        if value is None and text.strip("`") in ("all", "none", "None"):
                            continue
                        if not _same(_doc_value(text), value):
                            stale.append(f"{recipe.name}: {key} on {column}: page says {text!r}, recipe has {value!r}")
    assert not stale, "method pages out of date:\n" + "\n".join(stale)
