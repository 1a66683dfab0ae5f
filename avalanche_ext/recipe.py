"""What a recipe is, and the context it builds its strategy from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import itertools

import torch

from .hparams import COMMON, COMMON_PER_BENCHMARK, HParamError, HParams, coerce
from .protocols import FAMILIES

#: Configurations in every recipe's validation grid: the product of its value lists. Every
#: recipe gets the same search budget, so that no method wins by being tuned more.
GRID_SIZE = 4

#: Settings a grid may not search: the training budget is the benchmark's, the same for every recipe.
BUDGET_KEYS = ("epochs", "batch_size")

if TYPE_CHECKING:  # pragma: no cover
    from .benchmarks import Stream


class UnsupportedScenarioError(ValueError):
    """A recipe asked for a scenario it does not support."""


@dataclass(frozen=True)
class Recipe:
    """One runnable method: how to build its Avalanche strategy and with which settings.

    Attributes:
        name: the CLI name (``avalanche-ext run NAME``).
        family: one of :data:`FAMILIES`.
        paper: citation of the method (authors, venue, year, link).
        scenarios: the scenarios it supports (``class``, ``task``, ``domain``).
        build: ``build(ctx) -> SupervisedTemplate``.
        hparams: the recipe's own hyper-parameters and overrides of :data:`COMMON`.
        per_benchmark: per-benchmark overrides (chosen on the validation split).
        summary: one line for ``avalanche-ext list``.
        trains_once: the strategy trains once on the whole stream (joint training).
        choices: the allowed values of hyper-parameters that take one of a few values
            (``{"linkage": ("centroid", "ward")}``), checked by :meth:`resolve`.
        grid: the validation grid ``avalanche-ext select`` searches: values per hyper-parameter
            whose product is :data:`GRID_SIZE` configurations, the current settings among them.
        selected: the settings chosen on the validation split, per ``"benchmark/scenario"``:
            ``{"settings": {...}, "record": "path of the selection record"}`` (merged from the
            selected-settings entry points by the registry, see :meth:`with_selected`).

    ``per_benchmark`` keys are a benchmark (``"split_mnist5k"``) or a benchmark and scenario
    (``"split_mnist5k/class"``). :meth:`defaults` applies, later ones winning: :data:`COMMON`,
    :data:`COMMON_PER_BENCHMARK`, ``hparams``, ``per_benchmark[benchmark]``,
    ``per_benchmark["benchmark/scenario"]``, then the selected settings of that benchmark and
    scenario (those of the benchmark named by its spec's ``settings_from``, if it has one).
        amp: the strategy may train under automatic mixed precision (``--amp``,
            :class:`~avalanche_ext.plugins.AutocastPlugin`): it uses Avalanche's own training
            step and no plugin of it runs backward passes of its own inside that step.
    """

    name: str
    family: str
    paper: str
    scenarios: tuple[str, ...]
    build: Callable[["RecipeContext"], Any]
    hparams: dict[str, Any] = field(default_factory=dict)
    per_benchmark: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: str = ""
    trains_once: bool = False
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    selected: dict[str, dict[str, Any]] = field(default_factory=dict)
    amp: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"recipe {self.name}: family must be one of {FAMILIES}, not {self.family!r}")
        for key in self.per_benchmark:
            _split_key(self.name, key, "per_benchmark")
        for where in (None, *self.per_benchmark):
            values = self.defaults(*_split_key(self.name, where, "per_benchmark") if where else (None,))
            for key, allowed in self.choices.items():
                if key not in values:
                    raise ValueError(f"recipe {self.name}: choices name {key!r}, which is not a hyper-parameter")
                if values[key] not in allowed:
                    on = f" on {where}" if where else ""
                    raise ValueError(f"recipe {self.name}: the default {key}={values[key]!r}{on} is not among "
                                     f"its choices {allowed}")
        if self.grid:
            object.__setattr__(self, "grid", self._checked_grid())
        for key, entry in self.selected.items():
            self._check_selection(key, entry)

    # ----- settings ------------------------------------------------------------------------------
    def defaults(self, benchmark: Optional[str] = None, scenario: Optional[str] = None) -> dict[str, Any]:
        """Every hyper-parameter with its value for ``benchmark`` (and ``scenario``) before ``--set``.

        The layers, later ones winning: :data:`COMMON`, :data:`COMMON_PER_BENCHMARK` of the
        benchmark, :attr:`hparams`, ``per_benchmark[benchmark]``, ``per_benchmark["benchmark/scenario"]``
        and the settings :attr:`selected` for that benchmark and scenario.
        """
        values = dict(COMMON)
        if benchmark:
            values.update(COMMON_PER_BENCHMARK.get(benchmark, {}))
        values.update(self.hparams)
        if benchmark:
            values.update(self.per_benchmark.get(benchmark, {}))
            if scenario:
                values.update(self.per_benchmark.get(f"{benchmark}/{scenario}", {}))
                values.update(self.selection(benchmark, scenario).get("settings", {}))
        return values

    def resolve(self, benchmark: Optional[str], overrides: Optional[dict[str, Any]] = None,
                scenario: Optional[str] = None) -> HParams:
        """Apply ``overrides`` (validated by name, type and :attr:`choices`) to :meth:`defaults`.

        Raises:
            HParamError: an unknown hyper-parameter, a value of the wrong type, or one not among its choices.
        """
        values = self.defaults(benchmark, scenario)
        for key, raw in (overrides or {}).items():
            values[key] = coerce(key, raw, values[self._known(key, values)])
        for key, allowed in self.choices.items():
            if values[key] not in allowed:
                raise HParamError(f"recipe {self.name!r}: {key} must be one of {', '.join(map(repr, allowed))}, "
                                  f"got {values[key]!r}")
        _check_common(values)
        return HParams(values)

    def _known(self, key: str, values: dict[str, Any]) -> str:
        if key not in values:
            import difflib

            close = difflib.get_close_matches(key, list(values), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise HParamError(f"recipe {self.name!r} has no hyper-parameter {key!r}.{hint} "
                              f"Known: {', '.join(sorted(values))}")
        return key

    # ----- the validation grid and the selected settings -----------------------------------------
    def grid_points(self, benchmark: Optional[str] = None, scenario: Optional[str] = None) -> list[dict[str, Any]]:
        """The :data:`GRID_SIZE` configurations of :attr:`grid`, the current settings of ``benchmark`` and
        ``scenario`` (before any selection) first, the others in the grid's order.

        Raises:
            ValueError: the recipe declares no grid.
        """
        if not self.grid:
            raise ValueError(f"recipe {self.name!r} declares no validation grid: give register(..., grid={{...}}) "
                             f"with {GRID_SIZE} configurations")
        keys = list(self.grid)
        points = [dict(zip(keys, combo)) for combo in itertools.product(*self.grid.values())]
        current = self.unselected(benchmark, scenario)
        points.sort(key=lambda p: any(p[k] != current[k] for k in keys))  # stable: the current one first
        return points

    def unselected(self, benchmark: Optional[str] = None, scenario: Optional[str] = None) -> dict[str, Any]:
        """:meth:`defaults` without the :attr:`selected` settings: what a selection starts from."""
        bare = self if not self.selected else _replace(self, selected={})
        return bare.defaults(benchmark, scenario)

    def selection(self, benchmark: str, scenario: str) -> dict[str, Any]:
        """The selection applied on ``benchmark`` in ``scenario`` (``{}`` when none): that of the benchmark
        whose settings it reuses (its spec's ``settings_from``), or its own."""
        return self.selected.get(f"{settings_source(benchmark)}/{scenario}", {})

    def with_selected(self, selected: dict[str, dict[str, Any]]) -> "Recipe":
        """This recipe with :attr:`selected` replaced (every entry checked against the grid and types).

        Raises:
            ValueError: a key that is not ``benchmark/scenario``, a setting outside the grid, or a bad value.
        """
        import copy

        return _replace(self, selected=copy.deepcopy(dict(selected)))

    def _checked_grid(self) -> dict[str, tuple[Any, ...]]:
        defaults = self.defaults()
        grid = {}
        for key, values in self.grid.items():
            if key in BUDGET_KEYS:
                raise ValueError(f"recipe {self.name}: the grid may not search {key!r}, which is the benchmark's "
                                 f"training budget (the same for every recipe); search lr or the method's own settings")
            if key not in defaults:
                raise ValueError(f"recipe {self.name}: the grid names {key!r}, which is not a hyper-parameter")
            if not values:
                raise ValueError(f"recipe {self.name}: the grid gives no value for {key!r}")
            grid[key] = tuple(coerce(key, v, defaults[key]) for v in values)
            if len(set(map(repr, grid[key]))) != len(grid[key]):
                raise ValueError(f"recipe {self.name}: the grid repeats a value of {key!r}: {grid[key]}")
        size = 1
        for values in grid.values():
            size *= len(values)
        if size != GRID_SIZE:
            raise ValueError(f"recipe {self.name}: the grid has {size} configurations "
                             f"({' x '.join(str(len(v)) for v in grid.values())}); every recipe's grid has exactly "
                             f"{GRID_SIZE}, so that every method gets the same search budget")
        for where in (None, *self.per_benchmark):
            benchmark, scenario = _split_key(self.name, where, "per_benchmark") if where else (None, None)
            if benchmark and settings_from(benchmark):
                continue  # its settings come from another benchmark's selection; it is never searched
            current = self.unselected(benchmark, scenario)
            missing = {k: current[k] for k in grid if current[k] not in grid[k]}
            if missing:
                on = f" on {where}" if where else ""
                raise ValueError(f"recipe {self.name}: the current settings{on} {missing} are not in the grid "
                                 f"{grid}: the grid must hold them, so that a search can only improve on them")
        return grid

    def _check_selection(self, key: str, entry: dict[str, Any]) -> None:
        benchmark, scenario = _split_key(self.name, key, "selected settings")
        if not scenario:
            raise ValueError(f"recipe {self.name}: selected settings are per benchmark and scenario: "
                             f"give 'benchmark/scenario' keys, not {key!r}")
        if settings_from(benchmark):
            raise ValueError(f"recipe {self.name}: a selection for {key}, but {benchmark} reuses the selections of "
                             f"{settings_from(benchmark)} (its settings_from): select on that benchmark")
        if scenario not in self.scenarios:
            raise ValueError(f"recipe {self.name}: a selection for {key}, but the recipe supports the "
                             f"{'/'.join(self.scenarios)} scenario(s) only")
        settings = entry.get("settings")
        if not isinstance(settings, dict):
            raise ValueError(f"recipe {self.name}: the selection for {key} needs a 'settings' mapping, got {entry!r}")
        unknown = [k for k in settings if k not in self.grid]
        if unknown:
            raise ValueError(f"recipe {self.name}: the selection for {key} sets {unknown}, which its grid "
                             f"{sorted(self.grid)} does not search")
        values = self.unselected(benchmark, scenario)
        for k, v in settings.items():
            settings[k] = coerce(k, v, values[k])
            if settings[k] not in self.grid[k]:
                raise ValueError(f"recipe {self.name}: the selection for {key} sets {k}={settings[k]!r}, which is "
                                 f"not a value of its grid {self.grid[k]}")

    def check_scenario(self, scenario: str) -> None:
        if scenario not in self.scenarios:
            raise UnsupportedScenarioError(
                f"recipe {self.name!r} supports the {'/'.join(self.scenarios)} scenario(s), not {scenario!r}"
            )

    def check_amp(self, amp: Optional[str]) -> None:
        """Refuse mixed precision (``amp`` not None) for a recipe that does not declare ``amp=True``."""
        if amp is not None and not self.amp:
            raise ValueError(f"recipe {self.name!r} does not train under mixed precision: its strategy runs "
                             f"forward/backward passes of its own that autocast and loss scaling do not cover; "
                             f"drop --amp")


def _replace(recipe: Recipe, **changes: Any) -> Recipe:
    import dataclasses

    return dataclasses.replace(recipe, **changes)


def _split_key(recipe: str, key: str, what: str) -> tuple[str, Optional[str]]:
    """``"bench"`` -> ``("bench", None)``, ``"bench/scenario"`` -> ``("bench", "scenario")``."""
    benchmark, _, scenario = key.partition("/")
    if not benchmark or (_ and scenario not in ("class", "task", "domain")):
        raise ValueError(f"recipe {recipe}: {what} keys are 'benchmark' or 'benchmark/scenario' with scenario "
                         f"class, task or domain; got {key!r}")
    return benchmark, scenario or None


def settings_from(benchmark: str) -> Optional[str]:
    """The benchmark whose selected settings ``benchmark`` reuses (its spec's ``settings_from``), or None."""
    from .benchmarks.catalogue import BENCHMARKS

    spec = BENCHMARKS.get(benchmark)
    return spec.settings_from if spec is not None else None


def settings_source(benchmark: str) -> str:
    """The benchmark whose selections apply on ``benchmark``: its ``settings_from``, or itself."""
    return settings_from(benchmark) or benchmark


def _check_common(values: dict[str, Any]) -> None:
    for key in ("epochs", "batch_size", "eval_batch_size", "hidden", "layers"):
        if values[key] < 1:
            raise HParamError(f"{key} must be >= 1, got {values[key]}")
    for key, value in values.items():
        if (key == "lr" or key.endswith("_lr")) and isinstance(value, (int, float)) and value <= 0:
            raise HParamError(f"{key} must be > 0, got {value}")
    if not 0 <= values["momentum"] < 1:
        raise HParamError(f"momentum must be in [0, 1), got {values['momentum']}")
    if values["weight_decay"] < 0:
        raise HParamError(f"weight_decay must be >= 0, got {values['weight_decay']}")
    if values["pretrain_epochs"] < 0:
        raise HParamError(f"pretrain_epochs must be >= 0, got {values['pretrain_epochs']}")
    if values["optimizer"] not in ("sgd", "adam"):
        raise HParamError(f"optimizer must be 'sgd' or 'adam', got {values['optimizer']!r}")
    from .models import ARCHS

    if values["arch"] not in ARCHS:
        raise HParamError(f"arch must be one of {', '.join(repr(a) for a in ARCHS)}, got {values['arch']!r}")
    from .benchmarks.sources import LOADERS

    if values["pretrain"] not in ("none", *LOADERS):
        raise HParamError(f"pretrain must be 'none' or one of {', '.join(LOADERS)}, got {values['pretrain']!r}")
    if not 0 <= values["dropout"] < 1:
        raise HParamError(f"dropout must be in [0, 1), got {values['dropout']}")
    for key, value in values.items():
        if key.startswith("mem") and isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise HParamError(f"{key} must be > 0, got {value}")


@dataclass
class RecipeContext:
    """Everything a recipe's ``build`` needs: the stream, settings and shared plugins.

    ``device`` is the resolved device (:func:`avalanche_ext.devices.resolve_device`) every
    strategy gets through :meth:`strategy_args`; ``amp`` (``"bf16"``, ``"fp16"`` or None) adds
    an :class:`~avalanche_ext.plugins.AutocastPlugin`; ``num_workers`` and ``pin_memory`` are the
    data loaders' settings, passed to ``strategy.train`` / ``strategy.eval`` (:meth:`loader_args`).
    """

    stream: "Stream"
    hp: HParams
    evaluator: Any
    plugins: list = field(default_factory=list)
    device: Union[str, torch.device] = "cpu"
    seed: int = 0
    amp: Optional[str] = None
    num_workers: int = 0
    pin_memory: Optional[bool] = None

    @property
    def scenario(self) -> str:
        return self.stream.scenario

    def model(self, *, multihead: Optional[bool] = None, n_outputs: Optional[int] = None) -> torch.nn.Module:
        """The default network for this stream: multi-head in task-IL unless told otherwise.

        With ``hp.pretrain`` set to a data source, its ``features`` are first pretrained on
        that source's training split (cached on disk), the survey's "start from a
        pretrained model" design choice.
        """
        from .models import build_network

        hp = self.hp
        model = build_network(
            self.stream.input_shape,
            n_outputs or self.stream.n_outputs,
            arch=hp.arch,
            hidden=hp.hidden,
            layers=hp.layers,
            dropout=hp.dropout,
            multihead=self.stream.multihead if multihead is None else multihead,
        )
        if hp.pretrain != "none":
            from .training.pretrain import pretrain_for_stream

            pretrain_for_stream(model, self.stream, hp.pretrain, epochs=hp.pretrain_epochs, seed=self.seed)
        return model

    def optimizer(self, params: Any, *, lr: Optional[float] = None) -> torch.optim.Optimizer:
        """The optimizer named by ``hp.optimizer`` over ``params`` (a module or parameters)."""
        if isinstance(params, torch.nn.Module):
            params = params.parameters()
        hp = self.hp
        lr = hp.lr if lr is None else lr
        if hp.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=hp.weight_decay)

    def strategy_args(self, *, plugins: Sequence = (), **overrides: Any) -> dict[str, Any]:
        """Keyword arguments every Avalanche strategy takes, with ``plugins`` added (and, with ``amp``,
        the :class:`~avalanche_ext.plugins.AutocastPlugin` last)."""
        amp: list = []
        if self.amp is not None:
            from .plugins.amp import AutocastPlugin

            amp.append(AutocastPlugin(self.amp))
        args = dict(
            criterion=torch.nn.CrossEntropyLoss(),
            train_mb_size=self.hp.batch_size,
            train_epochs=self.hp.epochs,
            eval_mb_size=self.hp.eval_batch_size,
            device=self.device,
            evaluator=self.evaluator,
            plugins=[*plugins, *self.plugins, *amp],
        )
        args.update(overrides)
        return args

    def loader_args(self) -> dict[str, Any]:
        """The data loaders' settings, as keyword arguments of ``strategy.train`` and ``strategy.eval``.

        ``pin_memory=None`` leaves Avalanche's default: pinned when the device is CUDA.
        """
        return {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
