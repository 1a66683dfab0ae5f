"""Loss maths of deep generative replay: the task weighting, replay targets and the VAE loss."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def replay_weight(n_tasks: int) -> float:
    """Weight of the replayed data's loss while learning the ``n_tasks``-th task: :math:`(t-1)/t`.

    The current task's loss gets :math:`1/t`, so every task seen so far counts alike
    (Shin et al. 2017, van de Ven et al. 2020). It is 0 on the first task (nothing to replay).

    Raises:
        ValueError: ``n_tasks < 1``.
    """
    if int(n_tasks) < 1:
        raise ValueError(f"n_tasks counts the task being learned too, so it must be >= 1, got {n_tasks}")
    return (int(n_tasks) - 1) / int(n_tasks)


def weighted_replay_loss(current: torch.Tensor, replay: torch.Tensor, n_tasks: int) -> torch.Tensor:
    """:math:`\\frac{1}{t} L_{\\text{current}} + \\frac{t-1}{t} L_{\\text{replay}}` with :math:`t` = ``n_tasks``."""
    w = replay_weight(n_tasks)
    return (1.0 - w) * current + w * replay


def hard_targets(teacher_logits: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """The teacher's most likely class among ``classes``, as class labels ``(B,)``."""
    idx = torch.as_tensor(list(classes), dtype=torch.long, device=teacher_logits.device)
    if idx.numel() == 0:
        raise ValueError("classes is empty: the teacher has no class to label the replayed samples with")
    return idx[teacher_logits[:, idx].argmax(dim=1)]


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, classes: Sequence[int], temperature: float = 2.0
) -> torch.Tensor:
    """Distillation of the teacher's ``classes`` into all of the student's outputs.

    The target is the teacher's softmax over ``classes`` at temperature :math:`T`, padded with
    zeros for every other output (so the student learns to give the classes the teacher never
    saw no probability on replayed samples); the loss is the cross-entropy of the student's
    softmax at temperature :math:`T`, times :math:`T^2` to keep the gradient's scale
    independent of :math:`T` (Hinton et al. 2015; van de Ven et al. 2020):

    .. math::
        L = -T^2\\,\\mathrm{mean}_b \\sum_c q_{bc} \\log \\mathrm{softmax}(s_b / T)_c,\\quad
        q_{bc} = \\begin{cases} \\mathrm{softmax}(t_{b,\\text{classes}} / T)_c & c \\in \\text{classes} \\\\
                                 0 & \\text{otherwise} \\end{cases}

    Raises:
        ValueError: ``temperature <= 0`` or empty ``classes``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    idx = torch.as_tensor(list(classes), dtype=torch.long, device=student_logits.device)
    if idx.numel() == 0:
        raise ValueError("classes is empty: there is no old class to distil")
    targets = torch.zeros_like(student_logits)
    targets[:, idx] = F.softmax(teacher_logits[:, idx].detach() / temperature, dim=1)
    return F.cross_entropy(student_logits / temperature, targets) * temperature**2


def bernoulli_vae_loss(
    recon_logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """Negative ELBO per sample of a VAE with a Bernoulli decoder, averaged over the batch.

    .. math::
        \\mathcal{L} = \\sum_i \\mathrm{BCE}(\\sigma(\\hat x_i), x_i)
        - \\tfrac12 \\sum_j \\big(1 + \\log\\sigma_j^2 - \\mu_j^2 - \\sigma_j^2\\big)

    Args:
        recon_logits: decoder outputs before the sigmoid, any shape ``(B, ...)``.
        x: targets in ``[0, 1]``, same number of elements per sample.
        mu: posterior means ``(B, D)``.
        logvar: posterior log-variances ``(B, D)``.
    """
    rec = F.binary_cross_entropy_with_logits(recon_logits.flatten(1), x.flatten(1), reduction="none").sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return (rec + kl).mean()


__all__ = ["bernoulli_vae_loss", "hard_targets", "replay_weight", "soft_target_loss", "weighted_replay_loss"]
