"""The stop-gradient of negative replay: some rows of a batch train only some output units."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


def restrict_gradient(logits: Tensor, rows: slice, columns: Iterable[int]) -> Tensor:
    """Same values as ``logits``; in ``rows`` only the given ``columns`` carry gradient.

    ``torch.where`` with a detached copy: the loss of those rows cannot reach any output
    unit outside ``columns`` (nor the weights of those units), whatever the loss is. For
    a generated sample replayed as a *negative* of the current classes $C_t$ (GNR),

    $$\\tilde o_k = o_k \\text{ if } k \\in C_t \\text{ else } \\mathrm{sg}(o_k),$$

    so $\\partial \\ell / \\partial W_k = 0$ for every other class $k$.

    Args:
        logits: ``(batch, units)`` outputs.
        rows: the rows to restrict (``slice(None)`` for all, ``slice(b, None)`` for the replayed tail).
        columns: the output units those rows may train.

    Example:
        >>> out = restrict_gradient(x @ w.T, slice(8, None), [3, 4])      # doctest: +SKIP
    """
    keep = torch.ones_like(logits, dtype=torch.bool)
    keep[rows] = False
    cols = torch.as_tensor(sorted(set(int(c) for c in columns)), dtype=torch.long, device=logits.device)
    if cols.numel():
        keep[rows, cols] = True
    return torch.where(keep, logits, logits.detach())


__all__ = ["restrict_gradient"]
