"""MkDocs hook: the "Methods" section of the nav is made from the recipe registry.

Every registered recipe with a page ``docs/methods/<name>.md`` appears under its taxonomy
family, titled by the page's first heading, so the nav never lists a page that does not
exist or misses one that does.
"""

from __future__ import annotations

from pathlib import Path

FAMILY_TITLES = {"baseline": "Baselines", "replay": "Replay", "regularization": "Regularization",
                 "architectural": "Architectural", "hybrid": "Hybrid"}


def page_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def methods_nav(docs_dir: Path) -> list[dict]:
    """``[{family title: [{page title: "methods/<name>.md"}, ...]}, ...]`` in taxonomy order."""
    from avalanche_ext.recipe import FAMILIES
    from avalanche_ext.registry import all_recipes

    sections = []
    for family in FAMILIES:
        pages = []
        for recipe in all_recipes(family):
            page = docs_dir / "methods" / f"{recipe.name}.md"
            if page.is_file():
                pages.append({page_title(page): f"methods/{recipe.name}.md"})
        if pages:
            sections.append({FAMILY_TITLES[family]: pages})
    return sections


def on_config(config, **kwargs):
    for item in config["nav"]:
        if isinstance(item, dict) and "Methods" in item:
            item["Methods"] = methods_nav(Path(config["docs_dir"]))
    return config
