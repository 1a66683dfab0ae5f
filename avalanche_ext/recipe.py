"""What a recipe is, and the context it builds its strategy from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

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
    amp: bool = True

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

    def check_amp(self, amp: Optional[str]) -> None:
        """Refuse mixed precision (``amp`` not None) for a recipe that does not declare ``amp=True``."""
        if amp is not None and not self.amp:
            raise ValueError(f"recipe {self.name!r} does not train under mixed precision: its strategy runs "
                             f"forward/backward passes of its own that autocast and loss scaling do not cover; "
                             f"drop --amp")


def _check_common(values: dict[str, Any]) -> None:
    for key in ("epochs", "batch_size", "eval_batch_size", "hidden", "layers"):
        if values[key] < 1:
            raise HParamError(f"{key} must be >= 1, got {values[key]}")
    if values["lr"] <= 0:
        raise HParamError(f"lr must be > 0, got {values['lr']}")
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
