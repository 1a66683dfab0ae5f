"""Render the site's maths at build time: arithmatex's LaTeX spans become MathML.

Docstrings shown by mkdocstrings may write maths the reStructuredText way; its two forms are
rendered too: the role ``:math:`x``` (Markdown turns it into ``:math:<code>x</code>``) and the
directive ``.. math::`` followed by the indented formula (a paragraph, or a code block when a
blank line separates them).

The pages are read offline, so no JavaScript renderer can be fetched from a CDN; browsers render
MathML natively. A formula that cannot be converted fails the build with its page and text.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

# LaTeX that latex2mathml does not know, rewritten to what it does
_REWRITES = [
    (re.compile(r"\\arg\s*\\(min|max)|\\arg(min|max)\b"),
     lambda m: r"\mathop{\mathrm{arg\,%s}}" % (m.group(1) or m.group(2))),
    (re.compile(r"\\text\{([^{}]*)\}"), lambda m: r"\text{%s}" % m.group(1).replace("\\_", "_")),
    # sized delimiters (\big\lVert, \Big( ...): the size is dropped, the delimiter kept
    (re.compile(r"\\(?:big|Big|bigg|Bigg)[lrm]?\s*(?=\\[A-Za-z]+|\\\||[()\[\]|.])"), lambda m: ""),
]
_LEFTOVER = re.compile(r"\\[A-Za-z]+|\\\|")

_BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(.*?)\\\]\s*</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_RST_ROLE = re.compile(r":math:<code>(.*?)</code>", re.S)
_RST_DIRECTIVE = re.compile(r"<p>\.\. math::\s*(?:</p>\s*(?:<div[^>]*>)?<pre[^>]*>(?:<span></span>)?<code[^>]*>(.*?)</code></pre>"
                            r"(?:</div>)?|([^<]*?)</p>)", re.S)


def render(content: str, where: str = "") -> str:
    """Replace every arithmatex block and inline span, and every reST maths role and directive, by MathML."""

    def sub(display: str):
        def repl(match: re.Match) -> str:
            tex = html.unescape(next(g for g in match.groups() if g is not None)).strip()
            rewritten = tex
            for pattern, replacement in _REWRITES:
                rewritten = pattern.sub(replacement, rewritten)
            try:
                mathml = convert(rewritten, display=display)
            except Exception as e:  # noqa: BLE001 - report which formula, then fail the build
                raise ValueError(f"{where}: cannot render the formula {tex!r}: {e}") from e
            unknown = _LEFTOVER.findall(re.sub(r"<[^>]+>", "", mathml))
            if unknown:  # an unknown command is shown as its own name: refuse it rather than print it
                raise ValueError(f"{where}: the formula {tex!r} uses {sorted(set(unknown))}, which cannot be rendered")
            return mathml
        return repl

    content = _BLOCK.sub(sub("block"), content)
    content = _RST_DIRECTIVE.sub(sub("block"), content)
    content = _INLINE.sub(sub("inline"), content)
    return _RST_ROLE.sub(sub("inline"), content)


def on_page_content(html_text, page, **kwargs):
    return render(html_text, page.file.src_path)
