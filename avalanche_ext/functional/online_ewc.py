"""Online EWC (Schwarz et al., ICML 2018): one running Fisher estimate instead of one per task.

Elastic Weight Consolidation keeps, for every past task, a diagonal Fisher information
matrix and the parameters reached on that task, and pulls the network back towards them
with a quadratic penalty. Its memory and compute grow with the number of tasks. Online
EWC keeps a *single* Fisher estimate, decayed by $\\gamma$ and refreshed after each
task, and a single anchor (the latest parameters):

$$
F^* \\leftarrow \\gamma F^* + \\operatorname{norm}(F_t), \\qquad
\\theta^* \\leftarrow \\theta_t, \\qquad
\\mathcal{R}(\\theta) = \\tfrac{1}{2} \\sum_i F^*_i (\\theta_i - \\theta^*_i)^2 .
$$

$F_t$ is the diagonal empirical Fisher of the task just learned,
$F_{t,i} = \\mathbb{E}_{(x, y)} [(\\partial_{\\theta_i} \\log p_\\theta(y \\mid x))^2]$, computed
from per-sample gradients. Progress & Compress normalises each task's Fisher before adding
it, so that tasks fitted to very different losses weigh alike; ``norm`` here divides by the
largest entry (``"max"``, the default), by the mean entry (``"mean"``), or not at all
(``"none"``).

Paper: Schwarz, Luketina, Czarnecki, Grabska-Barwinska, Teh, Pascanu, Hadsell,
*Progress & Compress: A scalable framework for continual learning*, ICML 2018,
https://arxiv.org/abs/1805.06370 (online EWC: section 3, eq. 9).

Example:
    >>> import torch
    >>> net = torch.nn.Linear(3, 2)
    >>> ewc = OnlineEWC(gamma=0.9)
    >>> data = [(torch.randn(8, 3), torch.randint(0, 2, (8,)))]
    >>> ewc.consolidate(net, empirical_fisher(net, data))
    >>> float(ewc.penalty(net.named_parameters()).detach())  # zero at the anchor
    0.0
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional

import torch
from torch import nn

NORMALIZATIONS = ("max", "mean", "none")

Batch = tuple  # (x, y) or (x, y, task_labels)


def normalize_fisher(fisher: Mapping[str, torch.Tensor], mode: str = "max") -> dict[str, torch.Tensor]:
    """Scale a diagonal Fisher (one tensor per parameter) by one number over all its entries.

    Args:
        fisher: parameter name -> non-negative tensor.
        mode: ``"max"`` (largest entry becomes 1), ``"mean"`` (mean entry becomes 1) or ``"none"``.

    Returns:
        A new dictionary; an all-zero Fisher is returned unchanged.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")
    out = {k: v.detach().clone() for k, v in fisher.items()}
    if mode == "none" or not out:
        return out
    if mode == "max":
        scale = max(float(v.max()) for v in out.values() if v.numel())
    else:
        total = sum(float(v.sum()) for v in out.values())
        scale = total / max(1, sum(v.numel() for v in out.values()))
    if scale <= 0:
        return out
    return {k: v / scale for k, v in out.items()}


def _forward(model: nn.Module, x: torch.Tensor, t: Optional[torch.Tensor]) -> torch.Tensor:
    from avalanche.models.utils import avalanche_forward

    return avalanche_forward(model, x, t)


def empirical_fisher(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    max_samples: Optional[int] = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = nn.functional.cross_entropy,
    device: Optional[str | torch.device] = None,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher $\\mathbb{E}[(\\nabla_\\theta \\ell(x, y))^2]$ from per-sample gradients.

    The model runs in evaluation mode (no dropout, frozen batch-norm statistics) and is
    restored to its previous mode afterwards. Parameters that receive no gradient (e.g.
    the heads of other tasks) get a zero Fisher.

    Args:
        model: the network; a ``MultiTaskModule`` receives the task labels.
        batches: iterable of ``(x, y)`` or ``(x, y, task_labels, ...)`` mini-batches.
        max_samples: stop after this many samples (``None``: all).
        loss_fn: negative log-likelihood of one sample (cross-entropy by default).
        device: where the batches go; ``None``: the device of the model's parameters.

    Returns:
        parameter name -> tensor of the parameter's shape.
    """
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if device is None:
        device = named[0][1].device if named else torch.device("cpu")
    fisher = {n: torch.zeros_like(p) for n, p in named}
    was_training = model.training
    model.eval()
    seen = 0
    try:
        for batch in batches:
            x, y = batch[0].to(device), batch[1].to(device)
            t = batch[2].to(device) if len(batch) > 2 else None
            for i in range(x.shape[0]):
                if max_samples is not None and seen >= max_samples:
                    break
                ti = None if t is None else t[i : i + 1]
                loss = loss_fn(_forward(model, x[i : i + 1], ti), y[i : i + 1])
                grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
                for (n, _), g in zip(named, grads):
                    if g is not None:
                        fisher[n] += g.detach() ** 2
                seen += 1
            if max_samples is not None and seen >= max_samples:
                break
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("empirical_fisher got no samples")
    return {n: f / seen for n, f in fisher.items()}


def ewc_penalty(
    named_params: Iterable[tuple[str, torch.Tensor]],
    fisher: Mapping[str, torch.Tensor],
    anchor: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """$\\tfrac{1}{2} \\sum_i F_i (\\theta_i - \\theta^*_i)^2$ over the parameters that have a Fisher.

    Parameters without an entry (created after the last consolidation, e.g. a new head)
    are free. A parameter whose shape changed since then raises ``ValueError``.
    """
    total: Optional[torch.Tensor] = None
    for name, p in named_params:
        f = fisher.get(name)
        if f is None:
            continue
        if f.shape != p.shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(p.shape)}, its Fisher {tuple(f.shape)}")
        term = (f * (p - anchor[name]) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        ref = next(iter(anchor.values()), None)
        return torch.zeros((), device=ref.device if ref is not None else "cpu")
    return 0.5 * total


class OnlineEWC:
    """State of online EWC: the running Fisher $F^*$, the anchor $\\theta^*$ and their updates.

    Args:
        gamma: decay of the old Fisher, in ``[0, 1]`` (``1``: plain sum, ``0``: latest task only).
        normalize: how each task's Fisher is normalised before it is added (see ``normalize_fisher``).
    """

    def __init__(self, gamma: float = 1.0, normalize: str = "max"):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.gamma = float(gamma)
        self.normalize = normalize
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}
        self.n_updates = 0

    @property
    def active(self) -> bool:
        """Whether a consolidation happened (the penalty is identically zero before)."""
        return self.n_updates > 0

    def update_fisher(self, task_fisher: Mapping[str, torch.Tensor]) -> None:
        """$F^* \\leftarrow \\gamma F^* + \\operatorname{norm}(F_t)$; new parameters start from zero."""
        new = normalize_fisher(task_fisher, self.normalize)
        merged: dict[str, torch.Tensor] = {}
        for name, f in new.items():
            old = self.fisher.get(name)
            if old is not None and old.shape != f.shape:
                raise ValueError(f"parameter {name!r} changed shape since the last consolidation")
            merged[name] = f if old is None else self.gamma * old.to(f.device) + f
        for name, old in self.fisher.items():  # parameters absent now keep their decayed Fisher
            merged.setdefault(name, self.gamma * old)
        self.fisher = merged

    def set_anchor(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> None:
        """$\\theta^* \\leftarrow \\theta$ (detached copies)."""
        self.anchor = {n: p.detach().clone() for n, p in named_params}

    def consolidate(self, model: nn.Module, task_fisher: Mapping[str, torch.Tensor]) -> None:
        """Add ``task_fisher`` to the running Fisher and anchor at ``model``'s current parameters."""
        self.update_fisher(task_fisher)
        self.set_anchor(model.named_parameters())
        self.n_updates += 1

    def penalty(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """$\\tfrac{1}{2} \\sum_i F^*_i (\\theta_i - \\theta^*_i)^2$ (zero before the first consolidation)."""
        return ewc_penalty(named_params, self.fisher, self.anchor)

    def n_bytes(self) -> int:
        """Memory held by the Fisher and the anchor: constant in the number of tasks."""
        return sum(t.numel() * t.element_size() for d in (self.fisher, self.anchor) for t in d.values())

    def state_dict(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "normalize": self.normalize,
            "n_updates": self.n_updates,
            "fisher": {k: v.clone() for k, v in self.fisher.items()},
            "anchor": {k: v.clone() for k, v in self.anchor.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        gamma, normalize = float(state["gamma"]), str(state["normalize"])
        if not 0.0 <= gamma <= 1.0 or normalize not in NORMALIZATIONS:
            raise ValueError(f"invalid online-EWC state: gamma={gamma}, normalize={normalize!r}")
        self.gamma, self.normalize = gamma, normalize
        self.n_updates = int(state["n_updates"])
        self.fisher = {k: v.clone() for k, v in state["fisher"].items()}
        self.anchor = {k: v.clone() for k, v in state["anchor"].items()}


__all__ = ["NORMALIZATIONS", "OnlineEWC", "empirical_fisher", "ewc_penalty", "normalize_fisher"]
