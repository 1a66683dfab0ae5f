"""Helpers of the device round-trip tests: save a model and its plugin to a file, load it back, continue."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

#: The devices present: the CPU, and CUDA where there is one.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def naive_on(model: nn.Module, plugin: Any, device: str, *, lr: float = 1e-3, **kwargs: Any) -> Naive:
    """A stock ``Naive`` with ``Adam(model.parameters())`` on ``device``, one epoch, no logger."""
    args = dict(criterion=nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=1, device=device,
                evaluator=EvaluationPlugin(loggers=[]), plugins=[plugin])
    args.update(kwargs)
    return Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=lr), **args)


def through_file(model: nn.Module, plugin: Any, path: Path) -> dict[str, Any]:
    """``torch.save`` the model's and plugin's state, then load it with torch's defaults (weights only)."""
    torch.save({"model": model.state_dict(), "plugin": plugin.state_dict()}, path)
    return torch.load(path)


def continue_each(pairs: Iterable[tuple[nn.Module, Any]], experience: Any, device: str, **kwargs: Any) -> None:
    """Train every ``(model, plugin)`` on ``experience`` with a fresh strategy from the same random state."""
    for model, plugin in pairs:
        torch.manual_seed(1)
        naive_on(model, plugin, device, **kwargs).train(experience)


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two state dicts with the same keys, equal tensors and equal extra state."""
    return a.keys() == b.keys() and all(torch.equal(v, b[k]) if isinstance(v, torch.Tensor) else v == b[k]
                                        for k, v in a.items())


def devices_of(model: nn.Module) -> set[str]:
    """The device types of everything the model saves."""
    return {v.device.type for v in model.state_dict().values() if isinstance(v, torch.Tensor)}
