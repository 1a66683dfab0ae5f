"""The mask maths of Supermasks in Superposition (SupSup), free of any strategy.

* :func:`binary_mask` / :func:`straight_through_mask`: a score tensor to a 0/1 mask, by
  top-k on ``|S|`` or by the threshold ``S >= 0``; the straight-through version lets the
  gradient of the mask reach the scores unchanged.
* :func:`oneshot_inference` / :func:`binary_inference`: which of ``k`` masks fits an input,
  from the gradient of the output entropy with respect to the superposition weights;
  :func:`exhaustive_inference`: the same question answered by trying every mask.

Paper: Wortsman, Ramanujan, Liu, Kembhavi, Rastegari, Yosinski, Farhadi, "Supermasks in
Superposition", NeurIPS 2020, https://arxiv.org/abs/2006.14769.
"""

from __future__ import annotations

from typing import Callable, Literal, Union

import torch
from torch import Tensor

from .entropy import entropy

MaskMode = Literal["threshold", "topk"]
DeviceLike = Union[torch.device, str, None]


def binary_mask(scores: Tensor, mode: MaskMode = "threshold", sparsity: float = 0.5) -> Tensor:
    """A boolean mask from scores.

    ``threshold`` keeps the weights whose score is ``>= 0``; ``topk`` keeps the
    ``n - round(sparsity * n)`` weights with the largest ``|score|``.

    Args:
        scores: any shape.
        mode: ``"threshold"`` or ``"topk"``.
        sparsity: fraction of weights removed in ``topk`` mode, in ``[0, 1)``.
    """
    if mode == "threshold":
        return scores >= 0
    if mode != "topk":
        raise ValueError(f"mask mode must be 'threshold' or 'topk', not {mode!r}")
    flat = scores.detach().abs().flatten()
    n_drop = int(round(sparsity * flat.numel()))
    mask = torch.ones_like(flat, dtype=torch.bool)
    if n_drop > 0:
        mask[torch.topk(flat, n_drop, largest=False, sorted=False).indices] = False
    return mask.view_as(scores)


class _StraightThrough(torch.autograd.Function):
    """Forward: the 0/1 mask. Backward: the incoming gradient, unchanged."""

    @staticmethod
    def forward(ctx, scores: Tensor, mode: str, sparsity: float) -> Tensor:  # type: ignore[override]
        return binary_mask(scores, mode, sparsity).to(scores.dtype)  # type: ignore[arg-type]

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return grad, None, None


def straight_through_mask(scores: Tensor, mode: MaskMode = "threshold", sparsity: float = 0.5) -> Tensor:
    """:func:`binary_mask` as floats, with the straight-through gradient ``dM/dS := 1``.

    In ``topk`` mode the ranking uses ``|S|`` and the gradient flows through the absolute
    value (as in edge-popup), so ``dL/dS = dL/dM * sign(S)``.
    """
    if mode == "topk":
        return _StraightThrough.apply(scores.abs(), mode, sparsity)
    return _StraightThrough.apply(scores, mode, sparsity)


Superpose = Callable[[Tensor], Tensor]


def _alpha_grad(superpose: Superpose, alphas: Tensor, per_sample: bool) -> Tensor:
    alphas = alphas.detach().requires_grad_(True)
    with torch.enable_grad():
        h = entropy(superpose(alphas))
        objective = h.sum() if per_sample else h.mean()
        (grad,) = torch.autograd.grad(objective, alphas)
    return grad


def oneshot_inference(superpose: Superpose, n_tasks: int, batch_size: int, per_sample: bool = True,
                      device: DeviceLike = None) -> tuple[Tensor, Tensor]:
    """One-shot task inference: one gradient of the output entropy w.r.t. the mask weights.

    The network runs with the superposed mask ``sum_i alpha_i M_i``, ``alpha_i = 1/k``;
    the inferred task is ``argmin_i dH/dalpha_i`` (the mask whose weight, when raised,
    lowers the entropy the most).

    Args:
        superpose: ``alphas -> logits``; ``alphas`` has shape ``(k,)`` (one superposition
            for the batch) or ``(B, k)`` (one per sample).
        n_tasks: ``k``, the number of learned masks (``>= 1``).
        batch_size: ``B``.
        per_sample: infer a task per sample (``True``) or one for the whole batch.
        device: where the mask weights ``alphas`` are created (that of the network's input).

    Returns:
        ``(tasks, grad)``: the inferred mask per sample, shape ``(B,)``, and the gradient
        (``(B, k)`` or ``(k,)``).
    """
    if n_tasks < 1:
        raise ValueError("task inference needs at least one learned mask")
    shape = (batch_size, n_tasks) if per_sample else (n_tasks,)
    grad = _alpha_grad(superpose, torch.full(shape, 1.0 / n_tasks, device=device), per_sample)
    tasks = grad.argmin(dim=-1)
    return (tasks if per_sample else tasks.expand(batch_size)), grad


def binary_inference(superpose: Superpose, n_tasks: int, batch_size: int, per_sample: bool = True,
                     device: DeviceLike = None) -> Tensor:
    """Binary-search task inference for many tasks: ``ceil(log2 k)`` entropy gradients.

    Start with every mask weighted ``1/k``; after each gradient keep the half of the
    remaining masks with the most negative ``dH/dalpha_i`` (re-weighted uniformly), until
    one remains.

    Args: as :func:`oneshot_inference`.

    Returns:
        The inferred mask per sample, shape ``(B,)``.
    """
    if n_tasks < 1:
        raise ValueError("task inference needs at least one learned mask")
    rows = batch_size if per_sample else 1
    alive = torch.ones(rows, n_tasks, dtype=torch.bool, device=device)
    n_alive = n_tasks
    while n_alive > 1:
        alphas = alive.float() / n_alive
        grad = _alpha_grad(superpose, alphas if per_sample else alphas[0], per_sample).view(rows, n_tasks)
        grad = grad.masked_fill(~alive, float("inf"))
        n_alive = (n_alive + 1) // 2
        keep = grad.topk(n_alive, dim=1, largest=False).indices
        alive = torch.zeros_like(alive).scatter_(1, keep, True)
    tasks = alive.float().argmax(dim=1)
    return tasks if per_sample else tasks.expand(batch_size)


def exhaustive_inference(run_mask: Callable[[int], Tensor], n_tasks: int, per_sample: bool = True) -> Tensor:
    """Try every mask and keep the one with the lowest output entropy (``k`` forward passes).

    The exact criterion that :func:`oneshot_inference` approximates with one gradient. It
    costs ``k`` forward passes but no superposition, so it also avoids the bias of the
    linearisation when the tasks have disjoint label sets (class-incremental streams).

    Args:
        run_mask: ``i -> logits`` of the batch through mask ``i``.
        n_tasks: ``k``.
        per_sample: lowest entropy per sample (``True``) or lowest mean entropy for the batch.

    Returns:
        The inferred mask per sample, shape ``(B,)``.
    """
    if n_tasks < 1:
        raise ValueError("task inference needs at least one learned mask")
    h = torch.stack([entropy(run_mask(i)) for i in range(n_tasks)], dim=1)  # (B, k)
    return h.argmin(dim=1) if per_sample else h.mean(dim=0).argmin().expand(h.shape[0])


__all__ = [
    "MaskMode", "binary_inference", "binary_mask", "exhaustive_inference", "oneshot_inference", "straight_through_mask",
]
