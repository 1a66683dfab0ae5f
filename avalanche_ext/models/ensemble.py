"""An ensemble with one independent member per experience: the survey's Ensemble baseline.

Each experience trains a fresh member network on its own data only; earlier members are
frozen, so nothing is ever forgotten, at the price of one whole network per experience
(memory and inference time grow linearly).

* **Task-IL** (``mode="task"``): the task label picks the member trained on that task.
* **Class-IL / domain-IL** (``mode="class"``): member $k$ was trained on the classes
  $C_k$ of experience $k$; its softmax over $C_k$ (zero elsewhere) is
  $p_k(y \\mid x)$. The members are combined by one of two rules:

  - ``"mean_softmax"``: $p(y \\mid x) = \\frac{1}{K}\\sum_k p_k(y \\mid x)$;
  - ``"max_confidence"``: $p(y \\mid x) = p_{k^*}(y \\mid x)$ with
    $k^* = \\arg\\max_k \\max_y p_k(y \\mid x)$.

  The output is $\\log p(y \\mid x)$ (floored at $\\log 10^{-12}$). When the members' class
  sets are disjoint (class-IL) both rules predict the same class (the most confident
  member's top class) and differ only in the probabilities; they differ in predictions
  when classes are shared (domain-IL).

Example:
    >>> from avalanche_ext.models import build_network
    >>> model = Ensemble(lambda: build_network((1, 8, 8), 10, hidden=32), n_outputs=10, mode="class")
    >>> model.add_member(task=0, classes=[0, 1]); model.add_member(task=0, classes=[2, 3])
    1
    >>> model.eval()(torch.zeros(4, 1, 8, 8)).argmax(1).tolist() in ([0]*4, [1]*4, [2]*4, [3]*4)
    True
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import torch
from avalanche.models import MultiTaskModule
from torch import nn

from .common import forward_by_task

MODES = ("task", "class")
COMBINE_RULES = ("mean_softmax", "max_confidence")
#: Logit given to the classes a member does not own while it trains (class mode).
MASKED_LOGIT = -1e4
_LOG_FLOOR = math.log(1e-12)


class Ensemble(MultiTaskModule):
    """One member network per experience, picked by task label or combined.

    Args:
        member_factory: builds a fresh, untrained member mapping inputs to ``n_outputs`` logits.
        n_outputs: width of every member's output (task mode: classes per task; class mode:
            all classes of the stream).
        mode: ``"task"`` (pick by task label) or ``"class"`` (combine all members).
        combine: class-mode rule, ``"mean_softmax"`` or ``"max_confidence"`` (see module doc).

    A task label without a member (task mode), or an ensemble without members, yields all-zero
    outputs.

    The member of the first experience is built with the ensemble and waits in
    :attr:`next_member` until :meth:`add_member` takes it, so ``model.parameters()`` is not
    empty and the usual ``torch.optim.Adam(model.parameters())`` works;
    :class:`~avalanche_ext.plugins.EnsemblePlugin` points the optimizer at each new member.

    Attributes:
        last_members: class mode: for each row of the last combined forward pass, the index
            of the member that gives the predicted class the highest probability; ``None``
            before any combined pass.
    """

    def __init__(self, member_factory: Callable[[], nn.Module], n_outputs: int, *, mode: str = "task",
                 combine: str = "mean_softmax"):
        super().__init__()
        if not callable(member_factory):
            raise ValueError("member_factory must be a callable returning a new nn.Module")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if combine not in COMBINE_RULES:
            raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        self.member_factory = member_factory
        self.n_outputs = int(n_outputs)
        self.mode, self.combine = mode, combine
        self.members = nn.ModuleList()
        self.member_tasks: list[int] = []
        self.member_classes: list[list[int]] = []
        self.frozen: list[bool] = []
        self.active: Optional[int] = None
        self.last_members: Optional[torch.Tensor] = None
        # an empty, unsaved buffer that follows .to(): new members are created on its device
        self.register_buffer("_anchor", torch.empty(0), persistent=False)
        #: The first experience's member, built now so that the optimizer has parameters to hold.
        self.next_member: Optional[nn.Module] = self._make_member()

    # -- structure ---------------------------------------------------------------------------
    def _make_member(self) -> nn.Module:
        member = self.member_factory()
        if not isinstance(member, nn.Module):
            raise ValueError(f"member_factory returned {type(member).__name__}, not an nn.Module")
        return member.to(self._anchor.device)

    def add_member(self, task: int, classes: Sequence[int]) -> int:
        """Freeze every existing member and add a fresh one for ``task`` / ``classes``; returns its index.

        In task mode ``task`` must be new; ``classes`` (ids in ``[0, n_outputs)``) are the classes
        the member is trained on and, in class mode, the only ones it predicts.
        """
        task = int(task)
        classes = sorted({int(c) for c in classes})
        if not classes:
            raise ValueError("a member needs at least one class")
        if classes[0] < 0 or classes[-1] >= self.n_outputs:
            raise ValueError(f"classes {classes} are outside [0, {self.n_outputs}); raise n_outputs")
        if self.mode == "task" and task in self.member_tasks:
            raise ValueError(
                f"task {task} already has member {self.member_tasks.index(task)}: task mode needs a new task label "
                f"per experience (use mode='class' for streams without task labels)"
            )
        for i in range(len(self.members)):
            self.freeze_member(i)
        member = self.next_member if self.next_member is not None else self._make_member()
        self.next_member = None
        self.members.append(member)
        self.member_tasks.append(task)
        self.member_classes.append(classes)
        self.frozen.append(False)
        self.active = len(self.members) - 1
        return self.active

    def freeze_member(self, index: int) -> None:
        """Member ``index`` gets no gradient and stays in eval mode from now on."""
        self.members[index].requires_grad_(False)
        self.members[index].eval()
        self.frozen[index] = True
        if self.active == index:
            self.active = None

    def train(self, mode: bool = True) -> "Ensemble":
        super().train(mode)
        for member, frozen in zip(self.members, self.frozen):
            if frozen:
                member.eval()
        return self

    # -- forward -----------------------------------------------------------------------------
    def member_logits(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Member ``index``'s logits; in class mode the classes it does not own get :data:`MASKED_LOGIT`."""
        out = self.members[index](x)
        if out.dim() != 2 or out.shape[1] != self.n_outputs:
            raise ValueError(f"member {index} returned shape {tuple(out.shape)}, expected (N, {self.n_outputs})")
        if self.mode == "class":
            own = torch.zeros(self.n_outputs, dtype=torch.bool, device=out.device)
            own[self.member_classes[index]] = True
            out = out.masked_fill(~own, MASKED_LOGIT)
        return out

    def forward(self, x: torch.Tensor, task_labels: Any = None) -> torch.Tensor:  # type: ignore[override]
        if self.mode == "class":
            if self.training and self.active is not None:
                return self.member_logits(self.active, x)
            return self.combined(x)
        if task_labels is None:
            raise ValueError("an Ensemble in task mode needs task labels")
        return forward_by_task(self, x, task_labels, self.n_outputs)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        if int(task_label) not in self.member_tasks:
            return x.new_zeros(x.shape[0], self.n_outputs)
        return self.member_logits(self.member_tasks.index(int(task_label)), x)

    def combined(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(y \\mid x)$ of the class-mode combination rule, shape ``(N, n_outputs)``.

        Also records, in :attr:`last_members`, the member that gives each row's predicted
        class the highest probability (the experience the ensemble infers for the row).
        """
        if not self.members:
            self.last_members = None
            return x.new_zeros(x.shape[0], self.n_outputs)
        probs = torch.stack([torch.softmax(self.member_logits(i, x), dim=1) for i in range(len(self.members))])
        rows = torch.arange(x.shape[0], device=x.device)
        if self.combine == "mean_softmax":
            p = probs.mean(dim=0)
        else:
            best = probs.max(dim=2).values.argmax(dim=0)
            p = probs[best, rows]
        with torch.no_grad():
            self.last_members = probs[:, rows, p.argmax(dim=1)].argmax(dim=0)
        return p.clamp_min(1e-12).log().clamp_min(_LOG_FLOOR)

    # -- memory ------------------------------------------------------------------------------
    def memory_report(self) -> dict[str, int]:
        """Parameters and bytes of one member: what every further experience adds.

        Before the first experience, the waiting :attr:`next_member` is measured.
        """
        member = self.members[0] if self.members else self.next_member
        if member is None:  # no member at all (a saved state without one): measure a fresh one
            with torch.random.fork_rng():
                member = self._make_member()
        params = list(member.parameters())
        return {"params_per_member": sum(p.numel() for p in params),
                "bytes_per_member": sum(p.numel() * p.element_size() for p in params)}

    # -- state -------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"tasks": list(self.member_tasks), "classes": [list(c) for c in self.member_classes],
                "frozen": list(self.frozen), "active": self.active, "mode": self.mode, "combine": self.combine,
                "n_outputs": self.n_outputs}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for key in ("mode", "combine", "n_outputs"):
            if state[key] != getattr(self, key):
                raise ValueError(f"the saved ensemble has {key}={state[key]!r}, this one {getattr(self, key)!r}")
        self.member_tasks = list(state["tasks"])
        self.member_classes = [list(c) for c in state["classes"]]
        self.frozen = list(state["frozen"])
        self.active = state["active"]
        for i, frozen in enumerate(self.frozen):
            if frozen:
                self.members[i].requires_grad_(False)
        self.train(self.training)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: D401 - torch hook
        state = state_dict.get(prefix + "_extra_state")
        if state is not None:
            while len(self.members) < len(state["tasks"]):
                self.members.append(self._make_member())
            if not any(k.startswith(prefix + "next_member.") for k in state_dict):
                self.next_member = None  # the saved ensemble had already given its first member a task
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


__all__ = ["COMBINE_RULES", "Ensemble", "MODES"]
