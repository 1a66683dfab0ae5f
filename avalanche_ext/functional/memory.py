"""Bytes of replay memories: stored tensors, and what a memory of latents costs next to raw inputs."""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor


def tensors_bytes(tensors: Iterable[Tensor]) -> int:
    """Bytes held by the elements of ``tensors`` (a module's ``parameters()``, a buffer's tensors)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def latent_memory_bytes(n_samples: int, latent_shape: Iterable[int], dtype: torch.dtype = torch.float32) -> int:
    """Bytes of ``n_samples`` vectors of ``latent_shape`` stored as ``dtype`` (labels not included)."""
    per = math.prod(int(d) for d in latent_shape)
    return int(n_samples) * per * torch.empty(0, dtype=dtype).element_size()


def replay_memory_figures(n_samples: int, latent_shape: Iterable[int], input_shape: Iterable[int]) -> dict[str, int]:
    """Bytes of a replay memory of ``n_samples`` samples stored as latents vs as raw inputs.

    Latents and raw inputs are counted as ``float32``; raw inputs are also given as ``uint8``
    pixels, the cheapest lossless form of 8-bit images. Labels (8 bytes a sample, ``int64``)
    are counted in none of the figures.

    Returns:
        ``samples``, ``latent_dim``, ``latent_bytes``, ``raw_bytes_float32`` and ``raw_bytes_uint8``.
    """
    latent_shape = [int(d) for d in latent_shape]
    input_shape = [int(d) for d in input_shape]
    return {
        "samples": int(n_samples),
        "latent_dim": math.prod(latent_shape),
        "latent_bytes": latent_memory_bytes(n_samples, latent_shape),
        "raw_bytes_float32": latent_memory_bytes(n_samples, input_shape),
        "raw_bytes_uint8": latent_memory_bytes(n_samples, input_shape, torch.uint8),
    }


__all__ = ["latent_memory_bytes", "replay_memory_figures", "tensors_bytes"]
