"""Typed hyper-parameters: defaults, per-benchmark settings and ``--set key=value``."""

from __future__ import annotations

import json
import math
from typing import Any, Iterator, Mapping

#: Settings every recipe has. Recipes and benchmarks override them; ``--set`` wins last.
COMMON: dict[str, Any] = {
    "epochs": 4,
    "batch_size": 64,
    "eval_batch_size": 512,
    "optimizer": "adam",
    "lr": 1e-3,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "arch": "mlp",
    "hidden": 400,
    "layers": 2,
    "dropout": 0.0,
    # "none": train from scratch; or a data source (e.g. "mnist5k") to pretrain the feature
    # extractor on before the stream starts (cached on disk; never the stream's own data).
    "pretrain": "none",
    "pretrain_epochs": 5,
}

#: Per-benchmark settings shared by all recipes (chosen on the validation split).
COMMON_PER_BENCHMARK: dict[str, dict[str, Any]] = {
    "split_digits": {"epochs": 5, "batch_size": 32, "hidden": 200},
    "permuted_digits": {"epochs": 5, "batch_size": 32, "hidden": 200},
    "split_mnist5k": {"epochs": 4, "batch_size": 32},
    "permuted_mnist5k": {"epochs": 4, "batch_size": 32},
    "split_fmnist": {"epochs": 2, "batch_size": 128},
    "permuted_fmnist": {"epochs": 2, "batch_size": 128},
    "split_cifar10": {"arch": "cnn", "hidden": 256, "epochs": 5, "batch_size": 64},
    "split_cifar100": {"arch": "cnn", "hidden": 256, "epochs": 5, "batch_size": 64},
}


class HParamError(ValueError):
    """A hyper-parameter that does not exist or has the wrong type."""


def _parse(raw: str) -> Any:
    """A command-line value: JSON, ``true``/``false``, a float in any of Python's spellings
    (``nan``, ``-Infinity``, ``1_000``), else the string itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    flag = {"true": True, "false": False}.get(raw.lower())
    if flag is not None:
        return flag
    try:
        return float(raw)
    except ValueError:
        return raw


def check_finite(key: str, value: Any, raw: Any = None) -> None:
    """Refuse a NaN or infinite number (in a list too), which no setting accepts.

    Raises:
        HParamError: ``value`` is, or holds, NaN or an infinity.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            shown = raw if raw is not None else value
            raise HParamError(f"{key}={shown!r}: must be a finite number, not {item}")


def coerce(key: str, raw: Any, default: Any) -> Any:
    """Convert ``raw`` (a string from the command line, or a value) to ``default``'s type.

    Raises:
        HParamError: the value does not convert, or is NaN or infinite.
    """
    value = _parse(raw) if isinstance(raw, str) and not isinstance(default, str) else raw
    check_finite(key, value, raw)
    if default is None:
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        return str(value)
    elif kind in (list, tuple):
        if isinstance(value, (list, tuple)):
            return kind(value)
    elif isinstance(value, kind):
        return value
    raise HParamError(f"{key}={raw!r}: expected {kind.__name__} (default {default!r})")


class HParams(Mapping[str, Any]):
    """A read-only mapping with attribute access: ``hp.lr`` or ``hp["lr"]``."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("_values")
        if values is None or key.startswith("__"):  # while unpickled: no state yet
            raise AttributeError(key)
        try:
            return values[key]
        except KeyError:
            raise AttributeError(f"no hyper-parameter {key!r}; known: {', '.join(sorted(self._values))}") from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HParams({self._values})"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)
