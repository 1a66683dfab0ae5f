"""Run one recipe on one benchmark, tracked in MLflow, resumable, and summarise it.

``config`` says what to run (:class:`RunConfig`, and :class:`RunSettings` that every command
shares), ``plan`` checks it before anything starts, ``tracked`` owns the run itself
(:class:`TrackedRun`), ``loop`` holds the pieces of the training loop.
"""

from __future__ import annotations

from typing import Any, Optional

from ..logging import Tracking
from .config import DEFAULT_TRACKING_RETRY_S, KILL_AFTER_ENV, SEED_MAX, RunConfig, RunSettings, check_retry_budget, check_seed
from .interrupt import RunInterrupted, StopWatch, interrupts_raise
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


__all__ = ["DEFAULT_TRACKING_RETRY_S", "KILL_AFTER_ENV", "SEED_MAX", "RunConfig", "RunInterrupted", "RunPlan",
           "RunSettings", "StopWatch", "TrackedRun", "check_retry_budget", "check_seed", "checkpointer",
           "default_scenario", "interrupts_raise", "make_evaluator", "peak_rss_mb", "run", "seed_everything",
           "validate"]
