"""The settings ``avalanche-ext select`` chose on the validation split, shipped with the recipes.

``selected.json`` maps each recipe to ``{"benchmark/scenario": {"settings": {...}, "record": path}}``:
the grid configuration with the best mean validation accuracy and the record of the search.
The library reads it through the ``avalanche_ext.selected_settings`` entry point (the registry
never imports this package); ``avalanche-ext select`` rewrites it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The committed selection file.
PATH = Path(__file__).with_name("selected.json")


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """The pack's selected settings (``{}`` before any selection was made)."""
    return json.loads(PATH.read_text()) if PATH.is_file() else {}
