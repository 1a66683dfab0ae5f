"""Binary masks stored with one bit per entry.

Mask methods (SupSup, Piggyback) keep a learned task's binary mask for good; stored as
``bool`` it takes a byte per weight, packed it takes ``ceil(n / 8)`` bytes.
:func:`pack_bits` writes the entries of a mask, flattened in row-major order, eight to a
byte with the first entry in the most significant bit; :func:`unpack_bits` reads them back.

Example:
    >>> mask = torch.tensor([[True, False, True], [False, False, True]])
    >>> packed = pack_bits(mask)
    >>> packed.tolist(), torch.equal(unpack_bits(packed, mask.shape), mask)
    ([164], True)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

#: Weights of the bits inside one packed byte, most significant first.
_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(mask: Tensor) -> Tensor:
    """A 0/1 (or boolean) tensor as ``ceil(numel / 8)`` bytes (``uint8``, 1-D) on its device.

    Any non-zero entry counts as 1; no gradient is kept.
    """
    flat = mask.detach().reshape(-1).to(torch.bool).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    weights = _BIT_WEIGHTS.to(flat.device)
    return (flat.view(-1, 8) * weights).sum(dim=1, dtype=torch.int32).to(torch.uint8)


def unpack_bits(packed: Tensor, shape: Sequence[int], dtype: torch.dtype = torch.bool) -> Tensor:
    """Inverse of :func:`pack_bits`: the mask of ``shape`` as ``dtype``, on ``packed``'s device.

    Raises:
        ValueError: ``packed`` is not the 1-D ``uint8`` tensor of ``ceil(prod(shape) / 8)``
            bytes that :func:`pack_bits` writes for a mask of ``shape``.
    """
    numel = math.prod(int(s) for s in shape)
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != (numel + 7) // 8:
        raise ValueError(f"{tuple(packed.shape)} {packed.dtype} bytes cannot hold a mask of shape {tuple(shape)}: "
                         f"pass the {(numel + 7) // 8} uint8 bytes pack_bits wrote for it")
    weights = _BIT_WEIGHTS.to(packed.device)
    bits = (packed.unsqueeze(1) & weights) != 0
    return bits.reshape(-1)[:numel].reshape(*shape).to(dtype)


__all__ = ["pack_bits", "unpack_bits"]
