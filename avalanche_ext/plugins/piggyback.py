"""PiggybackPlugin: learn one binary weight mask and one head per task over a frozen backbone."""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin

from avalanche_ext.models.piggyback import PiggybackNet
from avalanche_ext.plugins.ensemble import restrict_optimizer


class PiggybackPlugin(SupervisedPlugin):
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
    masks to 1 bit per weight otherwise) and records the bytes stored for the task in
    :attr:`task_bytes`.

    Example:
        >>> from avalanche.training import Naive
        >>> net = build_network((1, 8, 8), 2, hidden=64)
        >>> model = PiggybackNet(net.features, feature_size=64, n_outputs=2)
        >>> strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
        ...                  criterion=torch.nn.CrossEntropyLoss(), plugins=[PiggybackPlugin()])
        >>> for exp in stream.train_stream: strategy.train(exp)
    """

    def __init__(self) -> None:
        super().__init__()
        self.task_bytes: dict[int, int] = {}

    @staticmethod
    def _model(strategy: Any) -> PiggybackNet:
        model = strategy.model
        if not isinstance(model, PiggybackNet):
            raise TypeError(
                f"PiggybackPlugin needs an avalanche_ext.models.PiggybackNet as the strategy's model, got "
                f"{type(model).__name__}; wrap your trained layers with PiggybackNet(backbone, feature_size, n_outputs)"
            )
        return model

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._model(strategy)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        labels = sorted({int(t) for t in strategy.experience.task_labels})
        if len(labels) != 1:
            raise ValueError(f"Piggyback learns one mask per task: an experience needs exactly one task label, got {labels}")
        task = labels[0]
        if task in model.learned:
            raise ValueError(
                f"task {task} was already learned and its mask is final; Piggyback needs a new task label per "
                f"experience (the task-incremental scenario, e.g. --scenario task)"
            )
        model.add_task(task)  # no-op when the model's adaptation already added it
        restrict_optimizer(strategy.optimizer, [p for p in model.parameters() if p.requires_grad])

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        task = sorted({int(t) for t in strategy.experience.task_labels})[0]
        model.consolidate(task)
        self.task_bytes[task] = model.task_bytes(task)

    def state_dict(self) -> dict[str, Any]:
        """The bytes stored per learned task (the masks and heads themselves live in the model)."""
        return {"task_bytes": dict(self.task_bytes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task_bytes = {int(k): int(v) for k, v in state["task_bytes"].items()}


__all__ = ["PiggybackPlugin"]
