"""Search ranks the method pages first and the validation records and generated tables last.

A validation record (``results/validation/*.md``) is a short page whose title names its recipe
(`` `hnet` on `permuted_mnist5k` ``) and whose text names a hyper-parameter in nearly every line,
so it came before the method page that explains the same recipe or hyper-parameter. Material
multiplies a page's search score by its ``search: boost:`` front matter; this hook sets it by
section, unless a page sets its own. A match in a title counts a thousand times one in the text,
hence the records' small boost: a record's title match weighs about what a text match weighs on
another page.
"""

from __future__ import annotations

# (path prefix below docs/, boost): the first prefix that matches a page applies
BOOSTS = [("methods/", 5.0), ("results/validation/", 0.01),
          # the generated tables name every recipe in a heading or a row: below the page that explains it
          ("results/fidelity", 0.01), ("results/leaderboards/", 0.01)]


def boost(src_uri: str) -> float | None:
    """The search boost of the page at ``src_uri`` (below docs/), or None to leave it at 1."""
    return next((value for prefix, value in BOOSTS if src_uri.startswith(prefix)), None)


def on_page_markdown(markdown, page, **kwargs):
    value = boost(page.file.src_uri)
    if value is not None:
        search = page.meta.setdefault("search", {})
        if isinstance(search, dict):
            search.setdefault("boost", value)
    return markdown
