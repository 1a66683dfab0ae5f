"""Run one recipe on one benchmark, tracked in MLflow, resumable, and summarise it.

``config`` says what to run (:class:`RunConfig`, and :class:`RunSettings` that every command
shares), ``plan`` checks it before anything starts, ``tracked`` owns the run itself
(:class:`TrackedRun`), ``loop`` holds the pieces of the training loop.
"""

from __future__ import annotations

from typing import Any, Optional

from ..logging import Tracking
from .config import KILL_AFTER_ENV, RunConfig, RunSettings
from .loop import make_evaluator, peak_rss_mb, seed_everything
from .plan import RunPlan, checkpointer, default_scenario, validate
from .tracked import TrackedRun


def run(cfg: RunConfig, tracking: Optional[Tracking] = None) -> dict[str, Any]:
    """Train ``cfg.recipe`` experience by experience, evaluating on the whole test stream after each.

    With ``cfg.checkpoint_dir`` a checkpoint is written after every evaluated training step;
    with ``cfg.resume`` the run continues from it (same MLflow run, same final numbers as an
    uninterrupted run). Returns the result record printed by ``avalanche-ext run --json``.
    See :class:`TrackedRun`.
    """
    return TrackedRun(cfg, tracking).execute()


__all__ = ["KILL_AFTER_ENV", "RunConfig", "RunPlan", "RunSettings", "TrackedRun", "checkpointer", "default_scenario",
           "make_evaluator", "peak_rss_mb", "run", "seed_everything", "validate"]
