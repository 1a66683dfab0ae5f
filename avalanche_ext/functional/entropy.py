"""Predictive entropy: how unsure a classifier is, the signal task inference relies on.

Methods that infer the task of a test input (HNET+ENT, SupSup) run it through the model of
every learned task and keep the most confident one, i.e. the one of lowest entropy

$$H(p) = -\\sum_c p_c \\log p_c, \\qquad p = \\mathrm{softmax}(z).$$

Example:
    >>> [round(h, 4) for h in entropy(torch.tensor([[0.0, 0.0], [100.0, 0.0]])).tolist()]  # log 2, 0
    [0.6931, 0.0]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def entropy(logits: Tensor) -> Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` over the last dimension, per row.

    Classes masked with a very negative logit get probability 0 and add nothing.
    """
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def normalized_entropy(logits: Tensor) -> Tensor:
    """:func:`entropy` divided by ``log(n_classes)``: 0 for one-hot, 1 for uniform."""
    n = logits.shape[-1]
    return entropy(logits) / math.log(n) if n > 1 else torch.zeros(logits.shape[:-1], device=logits.device)


__all__ = ["entropy", "normalized_entropy"]
