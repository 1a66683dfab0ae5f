"""EnsemblePlugin: a fresh member per experience; old members frozen; the optimizer sees only the new one."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import torch
from avalanche.core import SupervisedPlugin

from avalanche_ext.models.ensemble import Ensemble


def restrict_optimizer(optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter]) -> None:
    """Make ``optimizer`` update exactly ``params``, and nothing else, with fresh state.

    Parameters already in a group stay in it; the others are added to group 0; everything
    else is removed from the optimizer together with its state (momentum, Adam moments), so
    no update, momentum or weight decay can reach it.
    """
    keep = list(dict.fromkeys(params))
    keep_ids = {id(p) for p in keep}
    placed: set[int] = set()
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) in keep_ids and id(p) not in placed]
        placed.update(id(p) for p in group["params"])
    optimizer.param_groups[0]["params"].extend(p for p in keep if id(p) not in placed)
    optimizer.state = defaultdict(dict)


class EnsemblePlugin(SupervisedPlugin):
    """Train an :class:`~avalanche_ext.models.Ensemble`: one new member per experience.

    Idea: the survey's Ensemble baseline trains an independent network on each experience
    and never touches it again, so there is no forgetting by construction; the cost is one
    network per experience. Before each training experience the plugin freezes every
    existing member, adds a fresh member for the experience's task label and classes, and
    restricts the optimizer to the new member's parameters (its state reset). After the
    experience the new member is frozen too.

    Loss: the ordinary cross-entropy of the new member on the current experience,
    $L = \\mathrm{CE}(f_{\\theta_k}(x), y)$, with only $\\theta_k$ trained; at test time
    the task label picks the member (task-IL) or the members are combined (class-IL, see
    :class:`~avalanche_ext.models.Ensemble`).

    Paper: the Ensemble baseline of continual-learning surveys (e.g. De Lange et al.,
    "A Continual Learning Survey: Defying Forgetting in Classification Tasks", TPAMI 2021,
    arXiv:1909.08383).

    Scenarios: task-IL (``Ensemble(mode="task")``: each experience needs a new task label),
    class-IL and domain-IL (``Ensemble(mode="class")``).

    Example:
        >>> from avalanche.training import Naive
        >>> model = Ensemble(lambda: build_network((1, 8, 8), 2), n_outputs=2, mode="task")
        >>> opt = torch.optim.Adam([{"params": []}], lr=1e-3)   # members arrive later
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[EnsemblePlugin()])
        >>> for exp in stream.train_stream: strategy.train(exp)
    """

    def __init__(self) -> None:
        super().__init__()

    @staticmethod
    def _model(strategy: Any) -> Ensemble:
        model = strategy.model
        if not isinstance(model, Ensemble):
            raise TypeError(
                f"EnsemblePlugin needs an avalanche_ext.models.Ensemble as the strategy's model, "
                f"got {type(model).__name__}"
            )
        return model

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._model(strategy)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        exp = strategy.experience
        labels = sorted({int(t) for t in exp.task_labels})
        if model.mode == "task" and len(labels) != 1:
            raise ValueError(f"an Ensemble in task mode needs one task label per experience, got {labels}")
        task = labels[0] if len(labels) == 1 else -1
        index = model.add_member(task, exp.classes_in_this_experience)
        model.members[index].to(strategy.device)
        model.train()
        restrict_optimizer(strategy.optimizer, model.members[index].parameters())

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        if model.active is not None:
            model.freeze_member(model.active)


__all__ = ["EnsemblePlugin", "restrict_optimizer"]
