"""Helpers shared by the networks of several methods."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from avalanche.models import MultiTaskModule
from torch import nn


def forward_by_task(module: MultiTaskModule, x: torch.Tensor, task_labels: Any, width: int) -> torch.Tensor:
    """Run ``module.forward_single_task`` on the rows of each task; outputs of ``width`` columns.

    Unlike ``MultiTaskModule.forward`` it needs no model adaptation to know the width.
    ``task_labels`` is an int or one label per row; a batch of one task is passed through
    whole.
    """
    if isinstance(task_labels, int):
        return module.forward_single_task(x, task_labels)
    task_labels = torch.as_tensor(task_labels, device=x.device)
    if task_labels.dim() == 0:
        return module.forward_single_task(x, int(task_labels))
    tasks = torch.unique(task_labels).tolist()
    if len(tasks) == 1:
        return module.forward_single_task(x, int(tasks[0]))
    out = x.new_zeros(x.shape[0], width)
    for task in tasks:
        rows = task_labels == task
        out[rows] = module.forward_single_task(x[rows], int(task))
    return out


def described_modules(network: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Every module of ``network`` with how an error message names it: ``module 'a.b' (Linear)``.

    The network itself is ``the network (ClassName)``.
    """
    for name, m in network.named_modules():
        yield (f"module {name!r} ({type(m).__name__})" if name else f"the network ({type(m).__name__})"), m


__all__ = ["described_modules", "forward_by_task"]
