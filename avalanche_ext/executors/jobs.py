"""One job of an executor: a run configuration in, a result record out, never an exception.

Every executor (this process, a local process pool, a Ray cluster) sends jobs as plain
dicts made by :func:`attempt_config` and reports each outcome as a result record: the run's
own record with ``status="ok"``, or ``{"status": "failed", "error": ...}``.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict
from typing import Any, Callable, Optional

from ..runner import RunConfig

#: ``on_result(job, result)``, called by an executor as each job ends.
Callback = Callable[[RunConfig, dict[str, Any]], None]


def run_job(cfg_dict: dict[str, Any], threads: Optional[int] = None) -> dict[str, Any]:
    """Run one job and turn any exception into a result with ``status='failed'``."""
    from .._warnings import quiet_deprecations

    quiet_deprecations()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from ..runner import run

    cfg = RunConfig(**cfg_dict)
    try:
        result = run(cfg)
        result["status"] = "ok"
        return result
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def attempt_config(cfg: RunConfig, attempt: int) -> dict[str, Any]:
    """The job as a dict for attempt number ``attempt`` (0 first); a retry resumes from the job's last
    checkpoint if it writes any."""
    job = asdict(cfg)
    if attempt > 0 and cfg.checkpoint_dir:
        job["resume"] = True
    return job


def failed_result(cfg: RunConfig, error: str) -> dict[str, Any]:
    """The result record of a job that produced none (its worker died, or the task was lost)."""
    return {"status": "failed", "error": error, "recipe": cfg.recipe, "scenario": cfg.scenario, "seed": cfg.seed}
