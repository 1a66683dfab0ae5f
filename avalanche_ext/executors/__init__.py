"""Where runs execute: this process, a local process pool, or a Ray cluster.

``jobs`` holds what every executor shares (a job's attempt, its result record), ``local``
the serial and process-pool executors, ``ray_cluster`` the Ray executor (an optional extra);
:func:`dispatch` picks one by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ..runner import RunConfig, RunSettings
from .jobs import Callback, attempt_config, failed_result, run_job
from .local import run_pool, run_serial
from .ray_cluster import RayUnavailableError, gpus_per_task, run_ray

#: The executors ``--executor`` accepts.
EXECUTORS = ("serial", "process", "ray")


@dataclass(kw_only=True)
class FanOutSettings(RunSettings):
    """Settings of a command that runs many jobs (``taxonomy``, ``sweep``): seeds and where the jobs run."""

    seeds: int = 1
    executor: str = "process"  # one of EXECUTORS
    workers: Optional[int] = None
    address: Optional[str] = None  # Ray cluster address (executor "ray")
    cpus_per_task: int = 1  # CPUs and torch threads per run (executor "ray")
    gpus_per_run: Optional[float] = None  # GPUs per run (executor "ray"; None: see ray_cluster)


def default_workers() -> int:
    """Processes of the local pool when none are asked for: ``min(2, cores)``."""
    return max(1, min(2, os.cpu_count() or 1))


def dispatch(jobs: list[RunConfig], on_result: Callback, executor: str = "process", workers: Optional[int] = None,
             address: Optional[str] = None, cpus_per_task: int = 1, gpus_per_run: Optional[float] = None) -> None:
    """Run ``jobs`` with the named executor.

    ``serial`` runs them one after another in this process; ``process`` on ``workers`` fresh
    local processes, PyTorch threads split evenly between them, each worker on its own GPU
    where there are GPUs (round robin, see :mod:`.gpu_slots`); ``ray`` as Ray tasks of
    ``cpus_per_task`` CPUs and ``gpus_per_run`` GPUs on the cluster at ``address`` (or a
    local instance of ``workers`` CPUs when no address is given).
    """
    if executor == "serial":
        run_serial(jobs, on_result)
    elif executor == "process":
        n = workers or default_workers()
        run_pool(jobs, on_result, workers=n, threads=max(1, (os.cpu_count() or 1) // n))
    elif executor == "ray":
        run_ray(jobs, on_result, address=address, cpus_per_task=cpus_per_task, num_cpus=workers,
                gpus_per_run=gpus_per_run)
    else:
        raise ValueError(f"unknown executor {executor!r}: use {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Callback", "FanOutSettings", "RayUnavailableError", "attempt_config", "default_workers", "dispatch",
           "failed_result", "gpus_per_task", "run_job", "run_pool", "run_ray", "run_serial"]
