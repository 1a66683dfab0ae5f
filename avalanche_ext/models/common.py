"""Helpers shared by the networks of several methods."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
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


def _saved_tasks(state: Mapping[str, torch.Tensor], heads_prefix: str) -> list[str]:
    return sorted({k[len(heads_prefix):].split(".")[0] for k in state if k.startswith(heads_prefix)})


def grow_heads_to_state(module: nn.Module, state: Mapping[str, torch.Tensor], prefix: str = "") -> list[int]:
    """Create the heads (and their unit masks) of every ``MultiHeadClassifier`` in ``module`` that ``state`` holds.

    Avalanche's ``MultiHeadClassifier`` adds a head and an ``active_units_T<t>`` buffer for
    every task label it is adapted to, and widens a head for larger class ids; a network
    built afresh has only head ``"0"``, so it cannot load a trained one's state. Call this
    first (or from a load pre-hook, as ``ProgressCompressNet`` does); the ordinary loading
    then fills the heads in. Heads already present at the saved width are kept; missing ones are created and ones of
    another width replaced, on the device of the classifier's parameters. Task labels
    found are added to ``known_train_tasks_labels`` of every multi-task module under
    ``module``.

    Args:
        module: the freshly built network (or a part of it).
        state: the state dict to be loaded.
        prefix: the key prefix of ``module`` inside ``state``.

    Returns:
        The task labels that have a head in ``state``.
    """
    found: set[int] = set()
    for name, mh in module.named_modules():
        if not isinstance(mh, MultiHeadClassifier):
            continue
        base = f"{prefix}{name}." if name else prefix
        device = next(mh.parameters()).device
        for tid in _saved_tasks(state, base + "classifiers."):
            weight = state.get(f"{base}classifiers.{tid}.classifier.weight")
            if weight is None:
                continue
            head = mh.classifiers[tid] if tid in mh.classifiers else None
            if head is None or head.classifier.weight.shape != weight.shape:
                mh.classifiers[tid] = IncrementalClassifier(
                    mh.in_features, weight.shape[0], masking=False, auto_adapt=False
                ).to(device)
            units = state.get(f"{base}active_units_T{tid}")
            if units is not None:
                mh.register_buffer(f"active_units_T{tid}", torch.zeros_like(units, device=device))
            found.add(int(tid))
    for m in module.modules():
        if isinstance(m, MultiTaskModule):
            m.known_train_tasks_labels = set(m.known_train_tasks_labels) | found
    return sorted(found)


def described_modules(network: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Every module of ``network`` with how an error message names it: ``module 'a.b' (Linear)``.

    The network itself is ``the network (ClassName)``.
    """
    for name, m in network.named_modules():
        yield (f"module {name!r} ({type(m).__name__})" if name else f"the network ({type(m).__name__})"), m


__all__ = ["described_modules", "forward_by_task", "grow_heads_to_state"]
