"""The recipe registry: recipe modules, found through entry points, register themselves with :func:`register`."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .benchmarks.catalogue import suggest
from .protocols import FAMILIES
from .recipe import Recipe

_RECIPES: dict[str, Recipe] = {}
_DISCOVERED = False


def register(
    *,
    name: str,
    family: str,
    paper: str,
    scenarios: Sequence[str],
    hparams: Optional[dict[str, Any]] = None,
    per_benchmark: Optional[dict[str, dict[str, Any]]] = None,
    summary: str = "",
    trains_once: bool = False,
    choices: Optional[dict[str, Sequence[Any]]] = None,
    grid: Optional[dict[str, Sequence[Any]]] = None,
    amp: bool = True,
) -> Callable[[Callable], Callable]:
    """Decorate a recipe's ``build(ctx)`` function to add it to the registry.

    ``choices`` declares the allowed values of hyper-parameters that take one of a few values:
    an override with another value fails in :meth:`Recipe.resolve`, before any data is loaded,
    with a message that names the allowed ones.

    ``grid`` declares the validation grid ``avalanche-ext select`` searches: values per
    hyper-parameter whose product is exactly :data:`~avalanche_ext.recipe.GRID_SIZE`
    configurations (every recipe gets the same search budget), the recipe's current settings
    among them; ``epochs`` and ``batch_size`` are the benchmark's and cannot be searched.

    Raises:
        ValueError: a grid of another size, one without the current settings, or one over the budget.
    ``amp`` says whether the strategy may train under automatic mixed precision (``--amp``):
    leave it ``True`` for a strategy that uses Avalanche's own training step; set it ``False``
    where the strategy or one of its plugins runs forward/backward passes of its own inside
    that step (gradient projections, virtual updates, a lookahead) or trains in phases of its own.

    Example:
        >>> @register(name="my_naive", family="baseline", paper="-", scenarios=("class",),
        ...           hparams={"head": "linear"}, choices={"head": ("linear", "cosine")})
        ... def build(ctx):
        ...     from avalanche.training import Naive
        ...     model = ctx.model()
        ...     return Naive(model=model, optimizer=ctx.optimizer(model), **ctx.strategy_args())
        >>> @register(name="my_lr", family="baseline", paper="-", scenarios=("class",),
        ...           grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)})
        ... def build(ctx): ...
    """

    def wrap(build: Callable) -> Callable:
        recipe = Recipe(
            name=name,
            family=family,
            paper=paper,
            scenarios=tuple(scenarios),
            build=build,
            hparams=dict(hparams or {}),
            per_benchmark={k: dict(v) for k, v in (per_benchmark or {}).items()},
            summary=summary or (build.__doc__ or "").strip().splitlines()[0] if (summary or build.__doc__) else "",
            trains_once=trains_once,
            choices={k: tuple(v) for k, v in (choices or {}).items()},
            grid={k: tuple(v) for k, v in (grid or {}).items()},
            amp=amp,
        )
        existing = _RECIPES.get(name)
        if existing is not None and existing.build.__module__ != build.__module__:
            raise ValueError(f"recipe {name!r} is registered twice ({existing.build.__module__}, {build.__module__})")
        _RECIPES[name] = recipe
        return build

    return wrap


#: The entry-point group recipes are found through (``[project.entry-points."avalanche_ext.recipes"]``).
ENTRY_POINT_GROUP = "avalanche_ext.recipes"


def discover() -> None:
    """Import, once, every recipe module named by an entry point of :data:`ENTRY_POINT_GROUP`.

    An entry point names a module, or a package whose modules are all imported; each module
    registers its recipes with :func:`register`. The pack's own recipes are the entry point
    ``builtin = "avalanche_ext_recipes"``; another installed package adds its recipes the same way.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    from importlib.metadata import entry_points

    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if not found:
        raise RuntimeError(f"no recipe module is registered under the entry-point group {ENTRY_POINT_GROUP!r}: "
                           f"install avalanche-ext (pip install -e .) so that its entry points exist")
    for ep in found:
        module = ep.load()
        if hasattr(module, "__path__"):
            for info in pkgutil.walk_packages(module.__path__, prefix=module.__name__ + "."):
                importlib.import_module(info.name)
    _DISCOVERED = True
    apply_selected_settings()


#: The entry-point group of selected settings (``[project.entry-points."avalanche_ext.selected_settings"]``):
#: each names a function that returns ``{recipe: {"benchmark/scenario": {"settings": {...}, "record": path}}}``.
SELECTED_GROUP = "avalanche_ext.selected_settings"

#: Extra selected-settings files (JSON of the same shape, separated by the path separator), read after the
#: entry points: a selection can be tried before it is committed.
SELECTED_ENV = "AVALANCHE_EXT_SELECTED"

#: Set to ``1`` to ignore every selection: the recipes run with their own defaults (as before any search).
NO_SELECTED_ENV = "AVALANCHE_EXT_NO_SELECTED"


def selected_settings() -> dict[str, dict[str, dict[str, Any]]]:
    """The selected settings of every source: the entry points of :data:`SELECTED_GROUP`, then the files
    of :data:`SELECTED_ENV` (which may replace an entry point's selection for a benchmark and scenario);
    none at all when :data:`NO_SELECTED_ENV` is ``1``.

    Raises:
        ValueError: two entry points select settings for the same recipe, benchmark and scenario, or a file
            that is not such JSON.
    """
    from importlib.metadata import entry_points

    merged: dict[str, dict[str, dict[str, Any]]] = {}
    if os.environ.get(NO_SELECTED_ENV, "") == "1":
        return merged
    origin: dict[tuple[str, str], str] = {}
    for ep in entry_points(group=SELECTED_GROUP):
        for recipe, entries in _selection_shape(ep.load()(), f"entry point {ep.name} = {ep.value}").items():
            for key, entry in entries.items():
                if (recipe, key) in origin:
                    raise ValueError(f"selected settings for {recipe} on {key} come from two entry points "
                                     f"({origin[recipe, key]} and {ep.value}): keep one")
                origin[recipe, key] = ep.value
                merged.setdefault(recipe, {})[key] = entry
    for path in filter(None, os.environ.get(SELECTED_ENV, "").split(os.pathsep)):
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"${SELECTED_ENV}: cannot read selected settings from {path}: {e}") from e
        for recipe, entries in _selection_shape(data, path).items():
            merged.setdefault(recipe, {}).update(entries)
    return merged


def _selection_shape(data: Any, where: str) -> dict[str, dict[str, dict[str, Any]]]:
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"selected settings from {where} must map recipe -> {{'benchmark/scenario': "
                         f"{{'settings': {{...}}, 'record': path}}}}")
    return data


def apply_selected_settings() -> None:
    """Give every registered recipe its selected settings (see :func:`selected_settings`), replacing
    what an earlier call gave. A selection for a recipe that is not installed is skipped with a warning."""
    merged = selected_settings()
    for name, recipe in list(_RECIPES.items()):
        if recipe.selected or name in merged:
            _RECIPES[name] = recipe.with_selected(merged.get(name, {}))
    unknown = sorted(set(merged) - set(_RECIPES))
    if unknown:
        warnings.warn(f"selected settings name recipes that are not installed: {', '.join(unknown)}", stacklevel=2)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a "did you mean" error otherwise."""
    discover()
    if name not in _RECIPES:
        raise suggest("recipe", name, _RECIPES)
    return _RECIPES[name]


def all_recipes(family: Optional[str] = None) -> list[Recipe]:
    """Every registered recipe (of one ``family``), in taxonomy order then by name."""
    discover()
    recipes = [r for r in _RECIPES.values() if family in (None, r.family)]
    return sorted(recipes, key=lambda r: (FAMILIES.index(r.family), r.name))
