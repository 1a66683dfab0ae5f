"""Give a fresh network the task heads a saved state holds, so that it loads that state.

Avalanche's ``MultiHeadClassifier`` adds a head (an ``IncrementalClassifier``) and an
``active_units_T<t>`` buffer for every task label the model is adapted to, and widens a
head when a task brings a larger class id. A network built afresh has only head ``"0"``
at its initial width, so loading the state of a trained one fails with unexpected or
mismatched keys. :func:`grow_heads_to_state` creates, for every ``MultiHeadClassifier``
under a module, the heads and buffers the state names, at the widths the state gives; the
ordinary loading then fills them in.

Example:
    >>> from avalanche_ext.models import build_network
    >>> trained = build_network((1, 8, 8), 2, hidden=16, multihead=True)
    >>> # ... adapted to tasks 0, 1, 2 and trained ...
    >>> fresh = build_network((1, 8, 8), 2, hidden=16, multihead=True)
    >>> grow_heads_to_state(fresh, trained.state_dict())
    >>> fresh.load_state_dict(trained.state_dict())
"""

from __future__ import annotations

from typing import Mapping

import torch
from avalanche.models import IncrementalClassifier, MultiHeadClassifier, MultiTaskModule
from torch import nn


def _saved_tasks(state: Mapping[str, torch.Tensor], heads_prefix: str) -> list[str]:
    return sorted({k[len(heads_prefix):].split(".")[0] for k in state if k.startswith(heads_prefix)})


def grow_heads_to_state(module: nn.Module, state: Mapping[str, torch.Tensor], prefix: str = "") -> list[int]:
    """Create the heads (and their unit masks) of every ``MultiHeadClassifier`` in ``module`` that ``state`` holds.

    Heads already present at the saved width are kept; missing ones are created and ones of
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


__all__ = ["grow_heads_to_state"]
