"""Task-inference accuracy: how often a method that infers the task of a test input gets it right.

Methods that learn one set of weights, mask or member per task and see no task label at
test time must first infer which one to use: HNET+ENT
(``HyperNetClassifier(task_inference=True)``), SupSup in its ``gns`` and ``gnu`` modes, the
Ensemble in class mode. Their accuracy then depends on two things, the inference and the
prediction of the chosen task; these metrics measure the first. Over the test samples of
the experiences whose task has been learned,

$$\\mathrm{TaskInference\\_Acc} = \\frac{|\\{x : \\hat t(x) = t(x)\\}|}{|\\{x\\}|}.$$

Experiences of tasks not learned yet are left out (nothing could route them right).

The protocol (:class:`InfersTasks`): after each evaluation forward pass, the metric asks the
strategy's model and then each of its plugins for ``inferred_tasks(experience)``, where
``experience`` is the one being evaluated. An object that inferred the tasks of that
mini-batch returns ``(inferred, expected)``: the task ids chosen for its samples, shape
``(B,)``, and the id of the task the experience belongs to, in the same numbering; it
returns ``None`` when it inferred nothing for the mini-batch (task labels were given, no
task is learned yet) or when the experience belongs to no learned task. The first answer
that is not ``None`` counts. Where nothing answers, the metrics emit nothing.

Metric names, as Avalanche writes them: ``TaskInference_Acc_Exp/eval_phase/<stream>_stream/ExpNNN``
per experience and ``TaskInference_Acc_Stream/eval_phase/<stream>_stream`` per stream.

Example:
    >>> from avalanche.evaluation.metrics import accuracy_metrics
    >>> from avalanche.training.plugins import EvaluationPlugin
    >>> evaluator = EvaluationPlugin(accuracy_metrics(stream=True), *task_inference_metrics())
    >>> # strategy = Naive(model=HyperNetClassifier(net, task_inference=True), ..., evaluator=evaluator)
    >>> # strategy.eval(test_stream)["TaskInference_Acc_Stream/eval_phase/test_stream"]
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import torch
from avalanche.evaluation import GenericPluginMetric, Metric, PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name


@runtime_checkable
class InfersTasks(Protocol):
    """A model or plugin that infers the task of test inputs (see the module docstring)."""

    def inferred_tasks(self, experience: Any) -> Optional[tuple[torch.Tensor, int]]:
        """``(task ids inferred for the last evaluation mini-batch, id of experience's task)``, or ``None``."""
        ...


def inferred_tasks(strategy: Any) -> Optional[tuple[torch.Tensor, int]]:
    """The first answer of the strategy's model and plugins to ``inferred_tasks(strategy.experience)``."""
    for owner in (getattr(strategy, "model", None), *getattr(strategy, "plugins", ())):
        if owner is not None and isinstance(owner, InfersTasks):
            found = owner.inferred_tasks(strategy.experience)
            if found is not None:
                return found
    return None


class TaskInferenceAccuracy(Metric[Optional[float]]):
    """Share of samples whose inferred task is the expected one; a standalone metric.

    ``result()`` is ``None`` until a sample has been counted.
    """

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    @torch.no_grad()
    def update(self, inferred: torch.Tensor, expected: int) -> None:
        """Count the samples of a mini-batch: ``inferred`` task ids against the ``expected`` one."""
        inferred = torch.as_tensor(inferred)
        self.correct += int((inferred == int(expected)).sum())
        self.total += int(inferred.numel())

    def result(self) -> Optional[float]:
        return self.correct / self.total if self.total else None

    def reset(self) -> None:
        self.correct = 0
        self.total = 0


class _TaskInferencePluginMetric(GenericPluginMetric[Optional[float], TaskInferenceAccuracy]):
    """Reads the :class:`InfersTasks` protocol after each evaluation iteration; emits only what it counted."""

    def __init__(self, scope: str):
        super().__init__(TaskInferenceAccuracy(), reset_at=scope, emit_at=scope, mode="eval")

    def update(self, strategy: Any) -> None:
        found = inferred_tasks(strategy)
        if found is not None:
            self._metric.update(*found)

    def _package_result(self, strategy: Any) -> Optional[list[MetricValue]]:
        value = self.result()
        if value is None:
            return None
        name = get_metric_name(self, strategy, add_experience=self._emit_at == "experience", add_task=False)
        return [MetricValue(self, name, value, strategy.clock.train_iterations)]


class ExperienceTaskInference(_TaskInferencePluginMetric):
    """Task-inference accuracy of each evaluated experience: ``TaskInference_Acc_Exp``."""

    def __init__(self) -> None:
        super().__init__("experience")

    def __str__(self) -> str:
        return "TaskInference_Acc_Exp"


class StreamTaskInference(_TaskInferencePluginMetric):
    """Task-inference accuracy over a whole evaluated stream: ``TaskInference_Acc_Stream``."""

    def __init__(self) -> None:
        super().__init__("stream")

    def __str__(self) -> str:
        return "TaskInference_Acc_Stream"


def task_inference_metrics(*, experience: bool = True, stream: bool = True) -> list[PluginMetric]:
    """The task-inference metrics to add to an ``EvaluationPlugin``.

    Args:
        experience: one value per evaluated experience (``TaskInference_Acc_Exp/...``).
        stream: one value per evaluated stream (``TaskInference_Acc_Stream/...``).
    """
    metrics: list[PluginMetric] = []
    if experience:
        metrics.append(ExperienceTaskInference())
    if stream:
        metrics.append(StreamTaskInference())
    return metrics


__all__ = [
    "ExperienceTaskInference", "InfersTasks", "StreamTaskInference", "TaskInferenceAccuracy", "inferred_tasks",
    "task_inference_metrics",
]
