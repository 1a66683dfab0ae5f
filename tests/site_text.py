"""What a reader sees of a built page, and the LaTeX left in it.

A formula the maths hook did not render stays on the page as its source: ``$$``, ``\\frac``,
a pair of dollars, ``^{``. :func:`raw_tex` finds such leftovers in the visible text (outside
code, preformatted blocks and MathML), as :func:`visible_text` extracts it from the built HTML
or as the browser check (``tests/site_page_check.js``) reads it from the rendered page.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

HIDDEN = {"code", "pre", "math", "script", "style", "noscript", "template", "textarea"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# a dollar (inline or display delimiter), a TeX command, \( \) \[ \], a braced sub/superscript,
# reStructuredText's maths role or directive
_TEX = re.compile(r"\$|\\[A-Za-z]+|\\[()\[\]]|[_^]\{|:math:|\.\. math::")


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in _VOID:
            self.open.append(tag)

    def handle_endtag(self, tag) -> None:
        if tag in self.open:  # close it and anything left open inside it
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag):]

    def handle_data(self, data) -> None:
        if not HIDDEN.intersection(self.open):
            self.chunks.append(data)


def visible_text(html: str) -> str:
    """The text of an HTML page outside code, preformatted blocks, MathML, scripts and styles."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    return "".join(parser.chunks)


def raw_tex(text: str, context: int = 40) -> list[str]:
    """Every LaTeX leftover in ``text``, each shown with ``context`` characters around it."""
    return [text[max(0, m.start() - context):m.end() + context].replace("\n", " ")
            for m in _TEX.finditer(text)]
