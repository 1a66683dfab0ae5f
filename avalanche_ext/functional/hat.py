"""The maths of Hard Attention to the Task (HAT), on plain tensors.

Serrà, Surís, Miron, Karatzoglou, *Overcoming catastrophic forgetting with hard attention
to the task*, ICML 2018, `arXiv:1801.01423 <https://arxiv.org/abs/1801.01423>`_.

Each gated layer ``l`` has, for task ``t``, an attention vector
$a^l_t = \\sigma(s\\, e^l_t)$ over its units. These functions compute the pieces the
training loop needs: the annealing of ``s``, the attention-sparsity regularizer, the
gradient mask of a weight from the cumulative attention of the units it connects, and
the compensation of the embeddings' gradient.
"""

from __future__ import annotations

from typing import Sequence

import torch


def anneal_s(batch_index: int, n_batches: int, s_max: float) -> float:
    """The gate scale of batch ``batch_index`` (0-based) of an epoch of ``n_batches``.

    $$s = \\frac{1}{s_{max}} + \\Big(s_{max} - \\frac{1}{s_{max}}\\Big)\\frac{b - 1}{B - 1}$$

    with $b = $ ``batch_index + 1``: ``1/s_max`` on the first batch, ``s_max`` on the last.
    An epoch of one batch uses ``s_max``.
    """
    if n_batches <= 1:
        return float(s_max)
    frac = min(max(batch_index, 0), n_batches - 1) / (n_batches - 1)
    return 1.0 / s_max + (s_max - 1.0 / s_max) * frac


def attention_regularizer(gates: Sequence[torch.Tensor], cumulative: Sequence[torch.Tensor] | None) -> torch.Tensor:
    """The attention-sparsity regularizer of HAT (eq. 5 of the paper).

    $$R(A_t, A_{<t}) = \\frac{\\sum_l \\sum_i a^l_{t,i}\\,(1 - a^l_{<t,i})}{\\sum_l \\sum_i (1 - a^l_{<t,i})}$$

    Units already held by earlier tasks ($a_{<t} = 1$) cost nothing, so the new task is
    pushed to reuse them and to leave free units free. Before the first task
    $a_{<1} = 0$ (``cumulative=None``) and $R$ is the mean attention. When every unit is
    held, the denominator is 0 and so is $R$.

    Args:
        gates: the current task's attention, one vector per gated layer (with gradient).
        cumulative: the cumulative attention $a_{\\le t-1}$ of earlier tasks, same shapes,
            or ``None`` before the first task.
    """
    if not gates:
        raise ValueError("attention_regularizer needs at least one gated layer")
    num = gates[0].new_zeros(())
    den = gates[0].new_zeros(())
    for i, a in enumerate(gates):
        free = torch.ones_like(a) if cumulative is None else 1.0 - cumulative[i].to(a)
        num = num + (a * free).sum()
        den = den + free.sum()
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def weight_mask(post: torch.Tensor, pre: torch.Tensor | None, shape: torch.Size | Sequence[int]) -> torch.Tensor:
    """$\\min(a^l_i, a^{l-1}_j)$ for every entry ``(i, j, ...)`` of a weight of ``shape``.

    ``post`` has one value per output unit (``shape[0]``), ``pre`` one per input unit
    (``shape[1]``) or is ``None`` for the first layer, whose inputs are never gated. Kernel
    dimensions (conv weights) are broadcast. A bias uses ``post`` alone.
    """
    shape = tuple(shape)
    extra = (1,) * (len(shape) - 1)
    out = post.reshape(-1, *extra)
    if pre is None or len(shape) == 1:
        return out.expand(shape).clone()
    pre = pre.reshape(1, -1, *((1,) * (len(shape) - 2)))
    return torch.minimum(out, pre).expand(shape).clone()


def compensate_embedding_grad(
    grad: torch.Tensor, embedding: torch.Tensor, s: float, s_max: float, thres_cosh: float = 50.0
) -> torch.Tensor:
    """Rescale the gradient of an embedding so that annealing ``s`` does not shrink it.

    $$q_{t} = \\frac{s_{max}\\,[\\cosh(s\\,e_t) + 1]}{s\\,[\\cosh(e_t) + 1]}\\; g_{t}$$

    (section 2.5 of the paper); ``s * e`` is clamped to ``[-thres_cosh, thres_cosh]`` so
    that ``cosh`` stays finite.
    """
    num = torch.cosh(torch.clamp(s * embedding, -thres_cosh, thres_cosh)) + 1.0
    den = torch.cosh(embedding) + 1.0
    return grad * (s_max / s) * num / den


__all__ = ["anneal_s", "attention_regularizer", "compensate_embedding_grad", "weight_mask"]
