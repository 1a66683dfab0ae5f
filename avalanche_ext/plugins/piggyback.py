"""PiggybackPlugin: learn one binary weight mask and one head per task over a frozen backbone."""

from __future__ import annotations

from typing import Any

from ..models.piggyback import PiggybackNet
from .base import MethodPlugin, require_new_task, restrict_optimizer, single_task_label


def check_classes_fit(experience: Any, n_outputs: int) -> None:
    """Raise ``ValueError`` if a class id of ``experience`` has no unit in a head of ``n_outputs`` units.

    Each task's head has ``n_outputs`` units, indexed by the class ids the experience
    carries. Avalanche's task-incremental streams keep the global class ids (``[1, 4]``)
    unless built with ``class_ids_from_zero_in_each_exp=True``.
    """
    classes = sorted(int(c) for c in experience.classes_in_this_experience)
    if classes and classes[-1] >= n_outputs:
        raise ValueError(
            f"experience classes {classes} do not fit PiggybackNet's heads of n_outputs={n_outputs} units: "
            f"build PiggybackNet(..., n_outputs={classes[-1] + 1}) (one unit per class id; Avalanche's "
            "task-incremental labels are global class ids), or number the classes from 0 in each experience "
            "(nc_benchmark(..., class_ids_from_zero_in_each_exp=True))"
        )


class PiggybackPlugin(MethodPlugin[PiggybackNet]):
    """Train a :class:`~avalanche_ext.models.PiggybackNet` task by task.

    Idea: the backbone's weights $W$ are never changed once trained. Each new task $t$
    learns a real-valued mask $m_t$ per layer, used through its binarisation
    $M_t = \\mathbb{1}[m_t > \\tau]$ (straight-through gradient), and a new head $h_t$.
    Old tasks' masks are stored as bits and their heads frozen, so their predictions never
    change. Without pretrained weights the first experience trains the backbone (and uses
    it unmasked); it is frozen after that experience.

    Loss: $\\min_{m_t, h_t} \\mathrm{CE}(h_t(f(x; W \\odot M_t)), y)$ with
    $\\nabla_{m_t} := \\nabla_{M_t}$ (straight-through); $W$ is fixed.

    Paper: Mallya, Davis, Lazebnik, "Piggyback: Adapting a Single Network to Multiple Tasks
    by Learning to Mask Weights", ECCV 2018, https://arxiv.org/abs/1801.06519.

    Scenarios: task-IL only. Every experience must bring one task label the model has not
    learned yet; otherwise training stops before the first update of that experience.

    What the plugin does: before each experience it checks the task label and restricts the
    optimizer to the parameters being learned (the new masks and head; the backbone and the
    first head on the first experience), with fresh optimizer state. After the experience it
    calls :meth:`PiggybackNet.consolidate` (freezes the backbone after the dense task, packs
    masks to 1 bit per weight otherwise). What a task costs is in the model's
    :meth:`~avalanche_ext.models.PiggybackNet.memory_report`.

    Example:
        >>> from avalanche.training import Naive
        >>> net = build_network((1, 8, 8), 2, hidden=64)
        >>> model = PiggybackNet(net.features, feature_size=64, n_outputs=2)
        >>> strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
        ...                  criterion=torch.nn.CrossEntropyLoss(), plugins=[PiggybackPlugin()])
        >>> for exp in stream.train_stream: strategy.train(exp)

    Raises:
        ValueError: before an experience's first update, if it does not carry exactly one
            task label the model has not learned, or if its class ids do not fit the heads
            (a class id ``>= n_outputs`` of the ``PiggybackNet``).
        IncompatibleModelError: the strategy's model is not a ``PiggybackNet`` (before training).
    """

    model_type = PiggybackNet
    model_hint = "wrap your trained layers: avalanche_ext.models.PiggybackNet(backbone, feature_size, n_outputs)"

    def before_train_dataset_adaptation(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        # before the model's adaptation, which would already add the task's head
        check_classes_fit(strategy.experience, self._model(strategy).n_outputs)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        task = single_task_label(strategy.experience, "Piggyback")
        require_new_task(task, model.learned, "Piggyback")
        model.add_task(task)  # no-op when the model's adaptation already added it
        restrict_optimizer(strategy.optimizer, [p for p in model.parameters() if p.requires_grad])

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._model(strategy).consolidate(single_task_label(strategy.experience, "Piggyback"))


__all__ = ["PiggybackPlugin", "check_classes_fit"]
