"""The class mean of iCaRL's nearest-mean-of-exemplars classifier."""

from __future__ import annotations

import torch


def exemplar_mean(features: torch.Tensor) -> torch.Tensor:
    """The unit-length mean of a class's exemplar features (one row each), each row first scaled to unit length.

    This is the prototype of Rebuffi et al. (2017, Alg. 1): $\\mu_y = \\frac{1}{|P_y|}\\sum_{p \\in P_y} \\phi(p)$
    with $\\phi$ normalised, then normalised itself so that the nearest mean is the most similar one.
    """
    if features.dim() != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (n, d) matrix, got shape {tuple(features.shape)}")
    unit = features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    mean = unit.mean(dim=0)
    return mean / mean.norm().clamp_min(1e-12)
