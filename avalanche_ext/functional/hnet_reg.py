"""The hypernetwork output regularizer of von Oswald et al. (ICLR 2020), on tensors.

Before learning task :math:`T`, the hypernetwork's outputs for every earlier task
embedding are stored as fixed targets :math:`\\Theta^*_{t}` (detached). While learning
task :math:`T`, the hypernetwork is kept from changing them:

.. math::
    L = L_{\\text{task}}(\\Theta, e_T) + \\frac{\\beta}{T-1} \\sum_{t=1}^{T-1}
        \\big\\lVert h(e_t, \\Theta + \\Delta\\Theta) - \\Theta^*_t \\big\\rVert_2^2

where :math:`\\Delta\\Theta` is zero, or with the *one-step lookahead* the (detached) step
the optimizer would take on the task loss alone, so the regularizer corrects the direction
of the coming update. The earlier embeddings :math:`e_t` are constants here.

Paper: J. von Oswald, C. Henning, B. F. Grewe, J. Sacramento, *Continual learning with
hypernetworks*, ICLR 2020, https://arxiv.org/abs/1906.00695 (Eq. 2).
"""

from __future__ import annotations

from typing import Mapping, Optional, Protocol, Sequence, Union

import torch
import torch.nn.functional as F


class Hypernetwork(Protocol):
    """What the regularizer needs of a hypernetwork :math:`h(e, \\Theta)`.

    :class:`~avalanche_ext.models.ChunkedHyperNetwork` is one; any module with these
    methods works.
    """

    def __call__(self, task: int) -> torch.Tensor:
        """The flat output :math:`h(e_t, \\Theta)` for ``task``."""
        ...

    def embedding(self, task: int) -> torch.Tensor:
        """The embedding :math:`e_t` of ``task``."""
        ...

    def theta(self) -> Mapping[str, torch.Tensor]:
        """The shared parameters :math:`\\Theta`, by name."""
        ...

    def generate(self, embeddings: torch.Tensor, theta: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """The outputs for a batch of embeddings ``(K, D)``, with ``theta`` in place of :math:`\\Theta`."""
        ...


def output_regularizer(
    outputs: Union[torch.Tensor, Sequence[torch.Tensor]],
    targets: Union[torch.Tensor, Sequence[torch.Tensor]],
    beta: float,
) -> torch.Tensor:
    """:math:`\\frac{\\beta}{K} \\sum_k \\lVert o_k - t_k \\rVert^2` over ``K`` stored targets.

    Args:
        outputs: ``(K, N)`` tensor, or ``K`` tensors, of current hypernetwork outputs.
        targets: the stored outputs, same shapes.
        beta: regularization strength.

    Returns:
        A scalar; exactly ``0`` when ``K == 0`` (the first task).
    """
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} outputs but {len(targets)} targets")
        if not outputs:
            return torch.zeros(())
        outputs = torch.stack(list(outputs))
        targets = torch.stack(list(targets))
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    if outputs.shape[0] == 0:
        return outputs.new_zeros(())
    return F.mse_loss(outputs, targets, reduction="sum") * (beta / outputs.shape[0])


@torch.no_grad()
def store_targets(hnet: Hypernetwork, tasks: Sequence[int]) -> dict[int, torch.Tensor]:
    """The detached outputs :math:`h(e_t, \\Theta)` of ``tasks``: the targets for the next task."""
    return {int(t): hnet(int(t)).detach().clone() for t in tasks}


def optimizer_step(
    optimizer: Optional[torch.optim.Optimizer], param: torch.Tensor, grad: torch.Tensor, lr: Optional[float] = None
) -> torch.Tensor:
    """The change the optimizer would apply to ``param`` for gradient ``grad`` (not applied).

    Adam / AdamW: :math:`-\\eta\\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)` from the
    optimizer's moments updated with ``grad`` (weight decay ignored); any other optimizer,
    or none: the plain gradient step :math:`-\\eta\\, g` (``lr`` overrides :math:`\\eta`).
    """
    group = None
    if optimizer is not None:
        group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    eta = float(lr if lr is not None else (group["lr"] if group is not None else 1e-3))
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and group is not None:
        beta1, beta2 = group["betas"]
        state = optimizer.state.get(param, {})
        step = float(state["step"]) + 1 if "step" in state else 1.0
        m = (1 - beta1) * grad
        v = (1 - beta2) * grad * grad
        if "exp_avg" in state:
            m = m + beta1 * state["exp_avg"]
            v = v + beta2 * state["exp_avg_sq"]
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        return -eta * m_hat / (v_hat.sqrt() + group["eps"])
    return -eta * grad


def lookahead_delta(
    loss: torch.Tensor, hnet: Hypernetwork, optimizer: Optional[torch.optim.Optimizer] = None,
    lr: Optional[float] = None,
) -> dict[str, torch.Tensor]:
    """The detached one-step change :math:`\\Delta\\Theta` the task loss alone would cause.

    ``loss`` must still hold its graph (it is kept for the real backward pass). The step
    is the ``optimizer``'s (see :func:`optimizer_step`).
    """
    theta = hnet.theta()
    grads = torch.autograd.grad(loss, list(theta.values()), retain_graph=True, allow_unused=True)
    with torch.no_grad():
        return {
            name: (torch.zeros_like(p) if g is None else optimizer_step(optimizer, p, g.detach(), lr))
            for (name, p), g in zip(theta.items(), grads)
        }


def hnet_output_regularizer(
    hnet: Hypernetwork,
    targets: Mapping[int, torch.Tensor],
    beta: float,
    delta_theta: Optional[Mapping[str, torch.Tensor]] = None,
) -> torch.Tensor:
    """The regularizer of Eq. 2 for the stored ``targets`` of earlier tasks.

    Args:
        hnet: the hypernetwork; each key of ``targets`` must have an embedding.
        targets: task -> stored output (see :func:`store_targets`).
        beta: regularization strength :math:`\\beta`.
        delta_theta: optional lookahead step added to the shared parameters
            (see :func:`lookahead_delta`).

    Returns:
        A scalar that is exactly ``0`` without targets; gradients reach only the shared
        parameters :math:`\\Theta`, never the earlier embeddings.
    """
    theta = hnet.theta()
    if not targets:
        return next(iter(theta.values())).new_zeros(())
    tasks = sorted(targets)
    embeddings = torch.stack([hnet.embedding(t).detach() for t in tasks])
    if delta_theta is not None:
        theta = {n: p + delta_theta[n] if n in delta_theta else p for n, p in theta.items()}
    outputs = hnet.generate(embeddings, theta)
    return output_regularizer(outputs, torch.stack([targets[t] for t in tasks]), beta)


__all__ = [
    "Hypernetwork", "hnet_output_regularizer", "lookahead_delta", "optimizer_step", "output_regularizer", "store_targets",
]
