"""The recipe registry: recipe modules, found through entry points, register themselves with :func:`register`."""

from __future__ import annotations

import importlib
import pkgutil
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
    amp: bool = True,
) -> Callable[[Callable], Callable]:
    """Decorate a recipe's ``build(ctx)`` function to add it to the registry.

    ``choices`` declares the allowed values of hyper-parameters that take one of a few values:
    an override with another value fails in :meth:`Recipe.resolve`, before any data is loaded,
    with a message that names the allowed ones.

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
