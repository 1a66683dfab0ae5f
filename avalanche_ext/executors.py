"""Where runs execute: in this process (serial) or in a pool of fresh worker processes.

The process pool starts workers from a ``forkserver`` that has imported the library once,
so a worker starts fast, never inherits a used thread pool, and reports its own peak
memory. Each worker runs one job and exits; a job that raises, or whose worker dies, is
retried once and then reported as failed without stopping the others. A retried job that
writes checkpoints resumes from its last one instead of starting again.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any, Callable, Iterable, Optional

from .runner import RunConfig

Callback = Callable[[RunConfig, dict[str, Any]], None]


def run_job(cfg_dict: dict[str, Any], threads: Optional[int] = None) -> dict[str, Any]:
    """Run one job and turn any exception into a result with ``status='failed'``."""
    from ._warnings import quiet_deprecations

    quiet_deprecations()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from .runner import run

    cfg = RunConfig(**cfg_dict)
    try:
        result = run(cfg)
        result["status"] = "ok"
        return result
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def _attempt(cfg: RunConfig, attempt: int) -> dict[str, Any]:
    """The job as a dict; a retry resumes from the job's last checkpoint if it writes any."""
    job = asdict(cfg)
    if attempt > 0 and cfg.checkpoint_dir:
        job["resume"] = True
    return job


def _failed(cfg: RunConfig, error: str) -> dict[str, Any]:
    return {"status": "failed", "error": error, "recipe": cfg.recipe, "scenario": cfg.scenario, "seed": cfg.seed}


def run_serial(jobs: Iterable[RunConfig], on_result: Callback, threads: Optional[int] = None, retries: int = 1) -> None:
    for cfg in jobs:
        for attempt in range(retries + 1):
            result = run_job(_attempt(cfg, attempt), threads)
            if result["status"] == "ok" or attempt == retries:
                break
        result["attempts"] = attempt + 1
        on_result(cfg, result)


def run_pool(jobs: list[RunConfig], on_result: Callback, workers: int, threads: Optional[int] = None,
             retries: int = 1) -> None:
    """Run ``jobs`` on ``workers`` fresh processes (one job per process)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["avalanche_ext._preload"])
    attempts = {i: 0 for i in range(len(jobs))}
    pending = list(range(len(jobs)))
    while pending:
        broken = False
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {pool.submit(run_job, _attempt(jobs[i], attempts[i]), threads): i for i in pending}
            pending = []
            not_done = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = futures[fut]
                    attempts[i] += 1
                    try:
                        result = fut.result()
                    except BrokenProcessPool as e:
                        broken = True
                        result = _failed(jobs[i], f"worker process died ({e})")
                    if result["status"] != "ok" and attempts[i] <= retries:
                        pending.append(i)
                        continue
                    result["attempts"] = attempts[i]
                    on_result(jobs[i], result)
        if broken:
            # A dead worker breaks the whole pool: the jobs it took down are retried in a new one.
            pending = sorted(set(pending))


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


#: The executors ``--executor`` accepts.
EXECUTORS = ("serial", "process", "ray")


def dispatch(jobs: list[RunConfig], on_result: Callback, executor: str = "process", workers: Optional[int] = None,
             address: Optional[str] = None, cpus_per_task: int = 1) -> None:
    """Run ``jobs`` with the named executor.

    ``serial`` runs them one after another in this process; ``process`` on ``workers`` fresh
    local processes, PyTorch threads split evenly between them; ``ray`` as Ray tasks of
    ``cpus_per_task`` CPUs on the cluster at ``address`` (or a local instance of ``workers``
    CPUs when no address is given).
    """
    if executor == "serial":
        run_serial(jobs, on_result)
    elif executor == "process":
        n = workers or default_workers()
        run_pool(jobs, on_result, workers=n, threads=max(1, (os.cpu_count() or 1) // n))
    elif executor == "ray":
        from .ray_executor import run_ray

        run_ray(jobs, on_result, address=address, cpus_per_task=cpus_per_task, num_cpus=workers)
    else:
        raise ValueError(f"unknown executor {executor!r}: use {', '.join(EXECUTORS)}")
