"""Summaries of an accuracy matrix.

``M[i][j]`` is the accuracy on experience *j* after training on experience *i*
(rows: training steps, columns: experiences). A joint-training run has one row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_array(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"an accuracy matrix is a non-empty 2-D table, got shape {m.shape}")
    return m


def average_accuracy(matrix: Sequence[Sequence[float]]) -> float:
    """Mean accuracy over all experiences after the last training step."""
    return float(_as_array(matrix)[-1].mean())


def forgetting(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over experiences *j* < T of (best accuracy on *j* before the end) - (final accuracy on *j*).

    Chaudhry et al. 2018. Zero for a single-row matrix.
    """
    m = _as_array(matrix)
    t = m.shape[0]
    if t < 2:
        return 0.0
    drops = [m[j:t - 1, j].max() - m[t - 1, j] for j in range(min(t - 1, m.shape[1]))]
    return float(np.mean(drops))


def backward_transfer(matrix: Sequence[Sequence[float]]) -> float:
    """Mean over experiences *j* < T of (final accuracy on *j*) - (accuracy on *j* right after learning it).

    Lopez-Paz & Ranzato 2017. Zero for a single-row matrix.
    """
    m = _as_array(matrix)
    t = m.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([m[t - 1, j] - m[j, j] for j in range(min(t - 1, m.shape[1]))]))


def summarize(matrix: Sequence[Sequence[float]]) -> dict[str, float]:
    """``acc``, ``forgetting`` and ``bwt`` of an accuracy matrix."""
    return {"acc": average_accuracy(matrix), "forgetting": forgetting(matrix), "bwt": backward_transfer(matrix)}
