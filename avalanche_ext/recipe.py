"""What a recipe is, and the context it builds its strategy from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch

from .hparams import COMMON, COMMON_PER_BENCHMARK, HParamError, HParams, coerce
from .protocols import FAMILIES

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

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"recipe {self.name}: family must be one of {FAMILIES}, not {self.family!r}")
        for benchmark in (None, *self.per_benchmark):
            values = self.defaults(benchmark)
            for key, allowed in self.choices.items():
                if key not in values:
                    raise ValueError(f"recipe {self.name}: choices name {key!r}, which is not a hyper-parameter")
                if values[key] not in allowed:
                    where = f" on {benchmark}" if benchmark else ""
                    raise ValueError(f"recipe {self.name}: the default {key}={values[key]!r}{where} is not among "
                                     f"its choices {allowed}")

    def defaults(self, benchmark: Optional[str] = None) -> dict[str, Any]:
        """Every hyper-parameter with its value for ``benchmark`` before ``--set``."""
        values = dict(COMMON)
        if benchmark:
            values.update(COMMON_PER_BENCHMARK.get(benchmark, {}))
        values.update(self.hparams)
        if benchmark:
            values.update(self.per_benchmark.get(benchmark, {}))
        return values

    def resolve(self, benchmark: Optional[str], overrides: Optional[dict[str, Any]] = None) -> HParams:
        """Apply ``overrides`` (validated by name, type and :attr:`choices`) to :meth:`defaults`.

        Raises:
            HParamError: an unknown hyper-parameter, a value of the wrong type, or one not among its choices.
        """
        values = self.defaults(benchmark)
        for key, raw in (overrides or {}).items():
            if key not in values:
                import difflib

                close = difflib.get_close_matches(key, list(values), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise HParamError(
                    f"recipe {self.name!r} has no hyper-parameter {key!r}.{hint} "
                    f"Known: {', '.join(sorted(values))}"
                )
            values[key] = coerce(key, raw, values[key])
        for key, allowed in self.choices.items():
            if values[key] not in allowed:
                raise HParamError(f"recipe {self.name!r}: {key} must be one of {', '.join(map(repr, allowed))}, "
                                  f"got {values[key]!r}")
        _check_common(values)
        return HParams(values)

    def check_scenario(self, scenario: str) -> None:
        if scenario not in self.scenarios:
            raise UnsupportedScenarioError(
                f"recipe {self.name!r} supports the {'/'.join(self.scenarios)} scenario(s), not {scenario!r}"
            )


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
    """Everything a recipe's ``build`` needs: the stream, settings and shared plugins."""

    stream: "Stream"
    hp: HParams
    evaluator: Any
    plugins: list = field(default_factory=list)
    device: str = "cpu"
    seed: int = 0

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
        """Keyword arguments every Avalanche strategy takes, with ``plugins`` added."""
        args = dict(
            criterion=torch.nn.CrossEntropyLoss(),
            train_mb_size=self.hp.batch_size,
            train_epochs=self.hp.epochs,
            eval_mb_size=self.hp.eval_batch_size,
            device=self.device,
            evaluator=self.evaluator,
            plugins=[*plugins, *self.plugins],
        )
        args.update(overrides)
        return args
