"""Search ranks the method pages first and the validation records last.

A validation record (``results/validation/*.md``) is a short page that names a hyper-parameter
in nearly every line, so the search engine's length normalisation put it above the method page
that explains the same hyper-parameter. Material multiplies a page's score by its
``search: boost:`` front matter; this hook sets it by section, unless a page sets its own.
"""

from __future__ import annotations

# (path prefix below docs/, boost): the first prefix that matches a page applies
BOOSTS = [("methods/", 4.0), ("results/validation/", 0.25)]


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
