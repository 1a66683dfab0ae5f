"""Let wide tables fit the page: long names in table cells may break after an underscore.

Hyper-parameter and result tables hold names such as ``permuted_mnist5k`` or ``ewc_lambda``
that a browser never breaks, so a table of eight such columns overflows a 1280 px window. A
``<wbr>`` after each underscore of a cell's text lets the name wrap there (copying the text is
unchanged), and a value written ``mean ± std`` is kept on one line.
"""

from __future__ import annotations

import re

_TABLE = re.compile(r"<table>.*?</table>", re.S)
_TEXT = re.compile(r">([^<]+)<")


def _cell_text(match: re.Match) -> str:
    text = match.group(1).replace("_", "_<wbr>").replace(" ± ", "\u00a0±\u00a0")
    return f">{text}<"


def breakable(content: str) -> str:
    """``content`` with a line-break opportunity after every underscore of its tables' text."""
    return _TABLE.sub(lambda table: _TEXT.sub(_cell_text, table.group(0)), content)


def on_page_content(html_text, page, **kwargs):
    return breakable(html_text)
