"""EnsemblePlugin: a fresh member per experience; old members frozen; the optimizer sees only the new one."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..models.ensemble import Ensemble
from .base import MethodPlugin, experience_id, restrict_optimizer, single_task_label


class EnsemblePlugin(MethodPlugin[Ensemble]):
    """Train an :class:`~avalanche_ext.models.Ensemble`: one new member per experience.

    Idea: the survey's Ensemble baseline trains an independent network on each experience
    and never touches it again, so there is no forgetting by construction; the cost is one
    network per experience. Before each training experience the plugin freezes every
    existing member, adds a fresh member for the experience's task label and classes, and
    points the strategy's optimizer (whatever the user built, e.g.
    ``Adam(model.parameters())``) at the new member: its parameter groups keep their
    settings and hold only the new member's parameters, its state reset. After the
    experience the new member is frozen too.

    Loss: the ordinary cross-entropy of the new member on the current experience,
    $L = \\mathrm{CE}(f_{\\theta_k}(x), y)$, with only $\\theta_k$ trained; at test time
    the task label picks the member (task-IL) or the members are combined (class-IL, see
    :class:`~avalanche_ext.models.Ensemble`).

    Paper: the Ensemble baseline of continual-learning surveys (e.g. De Lange et al.,
    "A Continual Learning Survey: Defying Forgetting in Classification Tasks", TPAMI 2021,
    arXiv:1909.08383).

    Scenarios: task-IL (``Ensemble(mode="task")``: each experience needs a new task label),
    class-IL and domain-IL (``Ensemble(mode="class")``). In class mode the member that gives
    the predicted class the highest probability is the inferred experience: the plugin
    answers ``inferred_tasks`` for :func:`avalanche_ext.metrics.task_inference_metrics`
    (ids are experience indices).

    Example:
        >>> from avalanche.training import Naive
        >>> model = Ensemble(lambda: build_network((1, 8, 8), 2), n_outputs=2, mode="task")
        >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)   # re-pointed at each new member
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[EnsemblePlugin()])
        >>> for exp in stream.train_stream: strategy.train(exp)

    Attributes:
        experience_members: the member each trained experience got, by experience index.

    Raises:
        ValueError: in task mode, an experience without exactly one new task label.
        IncompatibleModelError: the strategy's model is not an ``Ensemble`` (before training).
    """

    model_type = Ensemble
    model_hint = "build one with avalanche_ext.models.Ensemble(member_factory, n_outputs, mode=...)"

    def __init__(self) -> None:
        super().__init__()
        self.experience_members: dict[int, int] = {}
        self._inferred: Optional[tuple[torch.Tensor, int]] = None

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        exp = strategy.experience
        if model.mode == "task":
            task = single_task_label(exp, "an Ensemble in task mode")
        else:
            labels = sorted({int(t) for t in exp.task_labels})
            task = labels[0] if len(labels) == 1 else -1
        index = model.add_member(task, exp.classes_in_this_experience)
        self.experience_members[experience_id(exp)] = index
        model.members[index].to(strategy.device)
        model.train()
        restrict_optimizer(strategy.optimizer, model.members[index].parameters())

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        if model.active is not None:
            model.freeze_member(model.active)

    # ---- task inference (class mode) ----------------------------------------------------------
    def after_eval_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        expected = self.experience_members.get(experience_id(strategy.experience))
        if model.mode != "class" or model.last_members is None or expected is None:
            self._inferred = None
        else:
            self._inferred = (model.last_members, expected)

    def inferred_tasks(self, experience: Any) -> Optional[tuple[torch.Tensor, int]]:
        """Class mode: the members inferred for the last evaluated mini-batch and the member of its experience."""
        return self._inferred

    # ---- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Which member each trained experience got (the members live in the model)."""
        return {"experience_members": dict(self.experience_members)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.experience_members = {int(k): int(v) for k, v in state["experience_members"].items()}


__all__ = ["EnsemblePlugin"]
