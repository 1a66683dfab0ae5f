"""Mask maths for Piggyback: a threshold with a straight-through gradient.

Piggyback (Mallya, Davis, Lazebnik, ECCV 2018, arXiv:1801.06519) learns a real-valued mask
$m$ per task and uses the binary mask $M = \\mathbb{1}[m > \\tau]$ in the forward pass. The
threshold has zero gradient almost everywhere, so the backward pass treats it as the identity
(straight-through estimator): $\\partial L / \\partial m := \\partial L / \\partial M$.
Once a task is learned, only $M$ is needed: one bit per masked weight (see
:mod:`avalanche_ext.functional.bits`).
"""

from __future__ import annotations

import torch


class _ThresholdSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, real: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        return (real > threshold).to(real.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def binarize_ste(real: torch.Tensor, threshold: float) -> torch.Tensor:
    """$M = \\mathbb{1}[m > \\tau]$ (same dtype as ``real``) with the identity as its gradient.

    Args:
        real: the real-valued mask $m$.
        threshold: $\\tau$; entries equal to it are 0.

    Example:
        >>> m = torch.tensor([0.0, 0.01], requires_grad=True)
        >>> binarize_ste(m, 5e-3).sum().backward(); m.grad
        tensor([1., 1.])
    """
    return _ThresholdSTE.apply(real, float(threshold))


__all__ = ["binarize_ste"]
