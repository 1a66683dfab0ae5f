"""What every method plugin shares: the model check, the task-label checks, the optimizer restriction.

A method plugin subclasses :class:`MethodPlugin`, names the model class it trains in
``model_type`` and how to build one in ``model_hint``, and reaches the model through
``self._model(strategy)``, which raises :class:`IncompatibleModelError` for any other model
(already in ``before_training``, so before any update). The helpers below check the task
labels of a stream or an experience and speak in the arguments of the pack's constructors,
never in command-line flags.

Example:
    >>> from avalanche_ext.models import PiggybackNet
    >>> class MyMaskPlugin(MethodPlugin[PiggybackNet]):
    ...     model_type = PiggybackNet
    ...     model_hint = "wrap the backbone: avalanche_ext.models.PiggybackNet(backbone, feature_size, n_outputs)"
    ...
    ...     def before_training_exp(self, strategy, *args, **kwargs):
    ...         model = self._model(strategy)
    ...         task = single_task_label(strategy.experience, "MyMask")
    ...         require_new_task(task, model.learned, "MyMask")
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar, Generic, Iterable, TypeVar

import torch
from avalanche.core import SupervisedPlugin

#: How the helpers name the scenario every mask/embedding-per-task method needs.
TASK_INCREMENTAL = "a task-incremental stream (one task label per experience)"

M = TypeVar("M", bound=torch.nn.Module)


class IncompatibleModelError(TypeError):
    """A method plugin was given a model of another class than the one it trains."""


def check_model(model: Any, model_type: type, owner: str, hint: str) -> Any:
    """Return ``model`` if it is a ``model_type``; raise :class:`IncompatibleModelError` otherwise.

    Args:
        model: the strategy's model.
        model_type: the class the method trains.
        owner: who asks (a plugin's class name), for the message.
        hint: how to build a ``model_type``, for the message.
    """
    if not isinstance(model, model_type):
        raise IncompatibleModelError(
            f"{owner} needs a {model_type.__name__} as the strategy's model, got {type(model).__name__}; {hint}"
        )
    return model


class MethodPlugin(SupervisedPlugin, Generic[M]):
    """A method's plugin: it trains one model class and checks it before any update.

    Subclasses set ``model_type`` (the class) and ``model_hint`` (how to build one, named in
    the error) and reach the model with :meth:`_model`.
    """

    model_type: ClassVar[type]
    model_hint: ClassVar[str] = ""

    def _model(self, strategy: Any) -> M:
        """The strategy's model, checked to be a ``model_type``."""
        return check_model(strategy.model, self.model_type, type(self).__name__, self.model_hint)

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._model(strategy)


def single_task_label(experience: Any, method: str) -> int:
    """The one task label of ``experience``.

    Raises:
        ValueError: the experience carries no task label or several.
    """
    labels = sorted({int(t) for t in experience.task_labels})
    if len(labels) != 1:
        raise ValueError(
            f"{method} learns one task per experience: an experience needs exactly one task label, got {labels}"
        )
    return labels[0]


def require_new_task(task: int, learned: Iterable[int], method: str, remedy: str = "") -> None:
    """Raise ``ValueError`` if ``task`` is among the ``learned`` task labels.

    Args:
        task: the task label of the experience about to be trained.
        learned: the task labels learned so far.
        method: the method's name, for the message.
        remedy: an alternative to name in the message (starts with ``"; "`` or ``". "``).
    """
    if int(task) in {int(t) for t in learned}:
        raise ValueError(
            f"task label {task} was already learned and {method} keeps what it learned for it: {method} needs a new "
            f"task label for each experience, {TASK_INCREMENTAL}{remedy}"
        )


def check_distinct_task_labels(experience: Any, method: str, remedy: str = "") -> None:
    """Fail if the stream of ``experience`` gives two experiences the same task label.

    Reads only the task labels of the stream's experiences (``experience.origin_stream``),
    never their data, so it can run on the first experience, before any update. Streams
    that do not expose their origin are left to the per-experience checks.

    Args:
        experience: any experience of the stream.
        method: the method's name, for the message.
        remedy: an alternative to name in the message (starts with ``"; "`` or ``". "``).

    Raises:
        ValueError: an experience reuses a task label of an earlier one (class- and
            domain-incremental streams label every experience 0).
    """
    try:
        labels = [sorted({int(t) for t in e.task_labels}) for e in experience.origin_stream]
    except Exception:  # noqa: BLE001 - a stream without an accessible origin: per-experience checks remain
        return
    seen: set[int] = set()
    for i, ls in enumerate(labels):
        reused = [t for t in ls if t in seen]
        if reused:
            raise ValueError(
                f"{method} needs a distinct task label for each experience, {TASK_INCREMENTAL}, but experience {i} "
                f"of this stream reuses task label {reused[0]} (task labels {labels}){remedy}"
            )
        seen.update(ls)


def experience_id(experience: Any) -> int:
    """The index of ``experience`` in its origin stream."""
    try:
        return int(experience.logging().current_experience)
    except AttributeError:
        return int(experience.current_experience)


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


__all__ = [
    "IncompatibleModelError", "MethodPlugin", "TASK_INCREMENTAL", "check_distinct_task_labels", "check_model",
    "experience_id", "require_new_task", "restrict_optimizer", "single_task_label",
]
