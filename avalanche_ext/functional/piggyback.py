"""Mask maths for Piggyback: threshold with a straight-through gradient, and 1-bit packing.

Piggyback (Mallya, Davis, Lazebnik, ECCV 2018, arXiv:1801.06519) learns a real-valued mask
$m$ per task and uses the binary mask $M = \\mathbb{1}[m > \\tau]$ in the forward pass. The
threshold has zero gradient almost everywhere, so the backward pass treats it as the identity
(straight-through estimator): $\\partial L / \\partial m := \\partial L / \\partial M$.
Once a task is learned, only $M$ is needed: one bit per masked weight.
"""

from __future__ import annotations

import torch

_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


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


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a 0/1 (or boolean) tensor into ``ceil(numel / 8)`` bytes, most significant bit first."""
    flat = mask.detach().reshape(-1).to(torch.bool).cpu()
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, torch.zeros(pad, dtype=torch.bool)])
    groups = flat.view(-1, 8).to(torch.uint8)
    return (groups * _BIT_WEIGHTS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: torch.Size | tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: a 0/1 tensor of ``shape`` and ``dtype`` on ``packed``'s device."""
    numel = 1
    for d in shape:
        numel *= int(d)
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != (numel + 7) // 8:
        raise ValueError(f"{tuple(packed.shape)} {packed.dtype} bytes cannot hold a mask of shape {tuple(shape)}")
    weights = _BIT_WEIGHTS.to(packed.device)
    bits = (packed.unsqueeze(1) & weights) != 0
    return bits.reshape(-1)[:numel].reshape(shape).to(dtype)


__all__ = ["binarize_ste", "pack_bits", "unpack_bits"]
