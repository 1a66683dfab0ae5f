"""Where the long lines of tables and code blocks may break, so that they fit a 1280 px page.

Hyper-parameter and result tables hold names such as ``permuted_mnist5k`` or ``ewc_lambda``
that a browser never breaks, so a table of eight such columns overflows the page: a ``<wbr>``
after each underscore of a cell's text lets the name wrap there, and a value written
``mean ± std`` is kept on one line. Code wraps its long lines (docs/stylesheets/extra.css), and a
browser would break a command at any hyphen (``--n-`` / ``experiences``) and a long list such as
``naive,joint,cumulative,...`` anywhere: in code, a word with a hyphen is kept whole and a list
may break after a comma. Copied text is unchanged.
"""

from __future__ import annotations

import re

_TABLE = re.compile(r"<table>.*?</table>", re.S)
_CODE = re.compile(r"<code[^>]*>.*?</code>", re.S)
_TEXT = re.compile(r">([^<]+)<")
_HYPHENATED = re.compile(r"[^\s<>]*-[^\s<>]*")
_LIST_COMMA = re.compile(r",(?=[^\s<])")  # naive,joint,replay: a list may break after a comma
_WHOLE = 40  # longer words may still break, rather than run past the page


def _cell_text(match: re.Match) -> str:
    text = match.group(1).replace("_", "_<wbr>").replace(" ± ", "\u00a0±\u00a0")
    return f">{text}<"


def _code_text(match: re.Match) -> str:
    def whole(word: re.Match) -> str:
        keep = word.group(0).strip("-") and len(word.group(0)) <= _WHOLE  # not a lone minus
        return f'<span class="nobr">{word.group(0)}</span>' if keep else word.group(0)

    text = _HYPHENATED.sub(whole, match.group(1))
    return ">" + _LIST_COMMA.sub(",<wbr>", text) + "<"


def breakable(content: str) -> str:
    """``content`` with a break opportunity after every underscore of its tables' text, and the
    hyphenated words of its code kept whole."""
    content = _TABLE.sub(lambda table: _TEXT.sub(_cell_text, table.group(0)), content)
    return _CODE.sub(lambda code: _TEXT.sub(_code_text, code.group(0)), content)


def on_page_content(html_text, page, **kwargs):
    return breakable(html_text)
