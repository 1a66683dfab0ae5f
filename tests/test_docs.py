"""The documentation site builds strictly, covers every recipe, and its code examples run."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from avalanche_ext.registry import all_recipes
from site_text import raw_tex, visible_text

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


def test_record_excerpts_are_whole_blocks():
    """A page that shows part of a record (``--8<-- "file:start:end"``) shows whole blocks of it: the
    excerpt starts after a blank line and ends before one, so a re-recorded file whose lines moved
    fails here instead of showing the wrong lines."""
    cut = []
    for page in (ROOT / "docs").rglob("*.md"):
        for path, start, end in re.findall(r'--8<-- "([^":]+):(\d+):(\d*)"', page.read_text()):
            lines = (ROOT / path).read_text().splitlines()
            first, last = int(start), int(end or len(lines))
            whole = (first == 1 or not lines[first - 2].strip()) and lines[first - 1].strip() \
                and (last == len(lines) or not lines[last].strip()) and lines[last - 1].strip()
            if not whole:
                cut.append(f"{page.relative_to(ROOT)}: {path}:{start}:{end}")
    assert not cut, "excerpts that cut a block of their record:\n" + "\n".join(cut)


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
    # the maths is rendered to MathML at build time: no page is left with raw LaTeX delimiters,
    # nor with LaTeX as visible text outside code (tests/test_site_browser.py checks the rendered pages)
    pages = {p.relative_to(tmp_path / "site").as_posix(): p.read_text() for p in (tmp_path / "site").rglob("*.html")}
    raw = [name for name, html in pages.items() if '<span class="arithmatex">' in html or '<div class="arithmatex">' in html]
    assert not raw, f"pages with unrendered maths: {raw}"
    left = [f"{name}: ...{found}..." for name, html in pages.items() for found in raw_tex(visible_text(html))]
    assert not left, "LaTeX shown as text outside code:\n" + "\n".join(left)
    assert "<math" in pages["methods/hnet/index.html"] and "<math" in pages["methods/latent_replay/index.html"]
    # read offline: no page asks for a web font
    fonts = [name for name, html in pages.items() if "fonts.googleapis.com" in html or "fonts.gstatic.com" in html]
    assert not fonts, f"pages that load web fonts: {fonts}"
    # search ranks method pages above the rest and validation records below it
    index = json.loads((tmp_path / "site" / "search" / "search_index.json").read_text())["docs"]
    boosts = {}
    for entry in index:
        boosts.setdefault(entry["location"].split("#")[0], set()).add(entry.get("boost", 1))
    methods = {page: b for page, b in boosts.items() if page.startswith("methods/")}
    records = {page: b for page, b in boosts.items() if page.startswith("results/validation/") and page.count("/") > 2}
    assert len(methods) == len(all_recipes()) and all(min(b) > 1 for b in methods.values()), methods
    assert records and all(max(b) < 1 for b in records.values()), records
    assert boosts[""] == boosts["results/validation/"] == {1}  # the home page and the records' overview


def test_line_break_hook_lets_table_names_break_at_underscores_and_keeps_hyphenated_commands_whole():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import line_breaks as hook
    finally:
        sys.path.pop(0)
    out = hook.breakable('<p>split_mnist5k</p><table><tr><th>split_mnist5k</th>'
                         '<td><a href="../x_y/">ewc_lambda</a> 1.0 ± 0.2</td></tr></table>')
    assert out.startswith("<p>split_mnist5k</p>")  # text outside tables is left alone
    assert "<th>split_<wbr>mnist5k</th>" in out and ">ewc_<wbr>lambda</a>" in out and 'href="../x_y/"' in out
    assert "1.0\u00a0±\u00a00.2" in out
    code = hook.breakable('<p>a-b</p><pre><span></span><code>avalanche-ext<span class="w"> </span>--n-experiences'
                          ' 10 x - y --flag</code></pre><p>run <code>avalanche-ext list</code></p>')
    assert code.startswith("<p>a-b</p>") and '<span class="nobr">avalanche-ext</span><span' in code
    assert '<span class="nobr">--n-experiences</span> 10 x - y <span class="nobr">--flag</span>' in code
    assert '<code><span class="nobr">avalanche-ext</span> list</code>' in code  # inline code too
    assert re.sub(r"<[^>]+>", "", code) == "a-bavalanche-ext --n-experiences 10 x - y --flagrun avalanche-ext list"
    assert hook.breakable("<code>--recipes naive,joint, ewc</code>") == \
        '<code><span class="nobr">--recipes</span> naive,<wbr>joint, ewc</code>'


@pytest.mark.parametrize("html, shown", [
    ("<p>the loss $$\\mathcal{L} = \\frac{1}{B}$$</p>", True), ("<p>as $a$ and b</p>", True),
    ("<li>\\sum_i x_i</li>", True), ("<p>b_{t}</p>", True), ("<p>:math:<code>T</code></p>", True),
    ("<p>.. math::</p>", True), ("<p>\\(x\\)</p>", True), ("<p>replace it by $<math><mi>x</mi></math>$</p>", True),
    ("<p><code>$HOME \\frac{a}{b}</code></p>", False), ("<pre>$$y$$</pre>", False),
    ("<p><math><mi>\\alpha</mi></math> and (x_1, y)</p>", False), ("<script>a_{b}</script>", False),
])
def test_visible_text_check_tells_latex_outside_code(html, shown):
    assert bool(raw_tex(visible_text(html))) == shown


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
