"""CWR* consolidation of an output layer: one consolidated weight row per class.

Every class $c$ has a consolidated row $cw_c$, a flag saying whether it was ever trained
and $N_c$, the samples it was trained on so far. During an experience the layer holds
temporary rows (:func:`start_weights`); afterwards the rows trained on $n_c$ samples, mean
$\\bar w$ subtracted, are folded into the consolidated ones (:func:`consolidate`):

$$cw_c \\leftarrow \\frac{cw_c\\sqrt{N_c / n_c} + (w_c - \\bar w)}{\\sqrt{N_c / n_c} + 1},
\\qquad N_c \\leftarrow N_c + n_c.$$

Paper: Lomonaco, Maltoni, Pellegrini, "Rehearsal-Free Continual Learning over Small
Non-I.I.D. Batches", CVPR Workshops 2020, https://arxiv.org/abs/1907.03799 .
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import Tensor

OLD_ROWS = ("zero", "consolidated")


def consolidated(cw: Tensor, seen: Tensor) -> Tensor:
    """The evaluation weights: ``cw`` for classes trained at least once, zero for the others."""
    return cw * seen[:, None]


def start_weights(cw: Tensor, seen: Tensor, trained: Iterable[int], *, old_rows: str = "zero") -> Tensor:
    """The output layer's weights at the start of an experience (a new tensor).

    Rows of the classes ``trained`` now start from their consolidated row (zero for a class
    never trained); the other rows hold zero (``old_rows="zero"``, CWR*'s original
    behaviour) or their consolidated row (``"consolidated"``).

    Raises:
        ValueError: ``old_rows`` is neither ``"zero"`` nor ``"consolidated"``.
    """
    if old_rows not in OLD_ROWS:
        raise ValueError(f"old_rows must be 'zero' or 'consolidated', got {old_rows!r}")
    w = consolidated(cw, seen) if old_rows == "consolidated" else torch.zeros_like(cw)
    for c in trained:
        w[c] = cw[c] if seen[c] else 0.0
    return w


def consolidate(
    cw: Tensor, seen: Tensor, past: Tensor, weights: Tensor, counts: Mapping[int, float], *, mean_shift: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Fold the rows trained in one experience into the consolidated ones.

    Args:
        cw: consolidated rows ``(classes, features)``.
        seen: ``(classes,)`` bool, whether each class was consolidated before.
        past: ``(classes,)`` samples each class was trained on before ($N_c$).
        weights: the layer's weights after the experience ``(classes, features)``.
        counts: class -> samples it was trained on in this experience ($n_c$ > 0), for
            every class trained; the mean $\\bar w$ is taken over these rows, in this order.
        mean_shift: subtract $\\bar w$ (CWR*); ``False`` keeps the rows as trained.

    Returns:
        New ``(cw, seen, past)``; the arguments are not changed.
    """
    cw, seen, past = cw.clone(), seen.clone(), past.clone()
    rows = list(counts)
    mean = weights[torch.as_tensor(rows, dtype=torch.long)].mean() if mean_shift else 0.0
    for c in rows:
        new = weights[c] - mean
        n = float(counts[c])
        if seen[c]:
            r = math.sqrt(float(past[c]) / n)
            cw[c] = (cw[c] * r + new) / (r + 1)
        else:
            cw[c] = new
            seen[c] = True
        past[c] += n
    return cw, seen, past


__all__ = ["OLD_ROWS", "consolidate", "consolidated", "start_weights"]
