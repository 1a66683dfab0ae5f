"""Pieces of a run's training loop: seeding, the evaluator, the training steps, peak memory."""

from __future__ import annotations

import random
import resource
from typing import Any, Iterable

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_evaluator(loggers: list) -> Any:
    """Avalanche's evaluator with the metrics our reports need.

    The task-inference metrics emit nothing unless the model or a plugin infers tasks
    (HNET+ENT, SupSup without task labels, a class-IL Ensemble).
    """
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from ..metrics import task_inference_metrics

    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        *task_inference_metrics(experience=True, stream=True),
        loggers=loggers,
    )


#: The metric whose last value is the run's ``task_inference_acc``.
TASK_INFERENCE_STREAM = "TaskInference_Acc_Stream/eval_phase/test_stream"


def last_task_inference_acc(strategy: Any) -> Any:
    """The task-inference accuracy of the last evaluation on the test stream, or None if no task was inferred."""
    value = strategy.evaluator.get_last_metrics().get(TASK_INFERENCE_STREAM)
    return None if value is None else float(value)


def training_steps(stream: Any, online: bool, online_size: int) -> Iterable[tuple[Any, bool]]:
    """``(experience, evaluate_after)`` pairs: whole experiences, or online mini-experiences."""
    if not online:
        return ((exp, True) for exp in stream.train_stream)
    from ..benchmarks.online import online_train_stream, with_boundaries

    return with_boundaries(online_train_stream(stream, online_size))

