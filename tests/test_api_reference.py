"""The API reference (docs/api/*.md) has an entry for every public name of the packages users import.

A public name is one in a package's ``__all__``; its entry is a mkdocstrings line
``::: avalanche_ext.<package>.<name>`` on one of the API pages. The build itself
(``mkdocs build --strict`` in test_docs.py) checks that every entry renders.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
#: The packages (and the one module) whose every public name the reference documents.
PACKAGES = ["plugins", "models", "storage", "templates", "logging", "benchmarks", "metrics", "functional", "protocols"]


def entries() -> dict[str, list[str]]:
    """``{identifier: [pages]}`` for every ``::: identifier`` line of the API pages."""
    found: dict[str, list[str]] = {}
    for page in sorted(API.glob("*.md")):
        for ident in re.findall(r"^::: (\S+)\s*$", page.read_text(), flags=re.M):
            found.setdefault(ident, []).append(page.name)
    return found


def resolve(identifier: str):
    """The object ``identifier`` names: the longest importable module prefix, then attributes."""
    parts = identifier.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(identifier)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_an_entry(package):
    module = importlib.import_module(f"avalanche_ext.{package}")
    documented = entries()
    missing = [name for name in module.__all__ if f"avalanche_ext.{package}.{name}" not in documented]
    assert not missing, (f"public names of avalanche_ext.{package} without an entry in docs/api/*.md "
                         f"(add '::: avalanche_ext.{package}.<name>' to docs/api/{package}.md): {missing}")


def test_every_entry_names_a_public_object_once():
    """No stale entry (a name renamed or made private) and no name documented twice."""
    public = {f"avalanche_ext.{p}.{n}" for p in PACKAGES for n in importlib.import_module(f"avalanche_ext.{p}").__all__}
    found = entries()
    stale = [ident for ident in found if ident.startswith(tuple(f"avalanche_ext.{p}." for p in PACKAGES))
             and ident not in public]
    assert not stale, f"entries that are not in their package's __all__: {stale}"
    twice = {ident: pages for ident, pages in found.items() if len(pages) > 1}
    assert not twice, f"names documented more than once: {twice}"
    unresolved = []
    for ident in found:
        try:
            resolve(ident)
        except (ImportError, AttributeError) as e:
            unresolved.append(f"{ident}: {e}")
    assert not unresolved, "entries that do not resolve:\n" + "\n".join(unresolved)


def test_every_api_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = next(item["API reference"] for item in config["nav"] if isinstance(item, dict) and "API reference" in item)
    listed = {path for item in nav for path in item.values()}
    pages = {f"api/{p.name}" for p in API.glob("*.md")}
    assert pages == listed, f"API pages not in the nav: {sorted(pages - listed)}; nav without a page: {sorted(listed - pages)}"
    assert {f"api/{p}.md" for p in PACKAGES} <= pages
