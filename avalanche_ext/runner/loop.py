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
    """Avalanche's evaluator with the metrics our reports need."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        loggers=loggers,
    )


def training_steps(stream: Any, online: bool, online_size: int) -> Iterable[tuple[Any, bool]]:
    """``(experience, evaluate_after)`` pairs: whole experiences, or online mini-experiences."""
    if not online:
        return ((exp, True) for exp in stream.train_stream)
    from ..benchmarks.online import online_train_stream, with_boundaries

    return with_boundaries(online_train_stream(stream, online_size))

