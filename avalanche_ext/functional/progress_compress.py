"""The compress-phase loss of Progress & Compress: distil the active column into the knowledge base.

During the compress phase the knowledge base (KB) learns to reproduce the active column's
(AC) predictions on the current task while online EWC keeps it close to what it knew:

$$
\\mathcal{L}_{\\text{compress}}(\\theta^{KB}) =
\\mathbb{E}_x \\big[ \\mathrm{KL}\\big(\\pi^{AC}(\\cdot \\mid x) \\,\\|\\, \\pi^{KB}(\\cdot \\mid x)\\big) \\big]
+ \\tfrac{\\lambda}{2} \\sum_i F^*_i (\\theta^{KB}_i - \\theta^*_i)^2 ,
$$

with $\\mathrm{KL}(p \\| q) = \\sum_y p(y) (\\log p(y) - \\log q(y))$ and both
distributions the softmax of the logits. The AC is the (fixed) teacher: no gradient reaches it.

Paper: Schwarz et al., *Progress & Compress: A scalable framework for continual learning*,
ICML 2018, https://arxiv.org/abs/1805.06370 (eq. 2).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from .online_ewc import OnlineEWC


def distillation_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of $\\mathrm{KL}(\\mathrm{softmax}(t) \\| \\mathrm{softmax}(s))$; the teacher is detached.

    Masked units (a very negative logit in both, as Avalanche's multi-head classifiers
    produce) contribute zero.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} != student logits {tuple(student_logits.shape)}")
    log_p = F.log_softmax(teacher_logits.detach(), dim=-1)
    log_q = F.log_softmax(student_logits, dim=-1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def compress_loss(
    ac_logits: torch.Tensor,
    kb_logits: torch.Tensor,
    kb_named_params: Iterable[tuple[str, torch.Tensor]],
    ewc: OnlineEWC,
    ewc_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compress loss and its two terms.

    Args:
        ac_logits: the active column's logits on the mini-batch (teacher).
        kb_logits: the knowledge base's logits on the same mini-batch (student).
        kb_named_params: the knowledge base's named parameters.
        ewc: the online-EWC state of the knowledge base.
        ewc_lambda: weight $\\lambda$ of the penalty.

    Returns:
        ``(loss, kl, penalty)`` with ``loss = kl + ewc_lambda * penalty``.
    """
    kl = distillation_kl(ac_logits, kb_logits)
    penalty = ewc.penalty(kb_named_params).to(kl.device)
    return kl + ewc_lambda * penalty, kl, penalty


__all__ = ["compress_loss", "distillation_kl"]
