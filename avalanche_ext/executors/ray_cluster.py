"""Spread runs over a Ray cluster (``--executor ray``); an optional extra: ``pip install .[ray]``.

Every run is one Ray task that asks for ``cpus_per_task`` CPUs and pins PyTorch to as many
threads, so tasks never oversubscribe a node's cores. Each task runs in a fresh worker
process (``max_calls=1``), like the local process pool: no state leaks from one run to the
next and the reported peak memory is the run's own. A task that raises, or whose worker
dies, is retried once (resuming from its checkpoint if it wrote one) and then reported as
failed, without stopping the others. Every run logs to the tracking URI of its
configuration: a shared MLflow server for a cluster, or the local SQLite file when Ray runs
on this machine.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from ..runner import RunConfig
from .jobs import Callback, attempt_config, failed_result, run_job


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("the ray executor needs Ray: pip install 'avalanche-ext[ray]' "
                                  "(or use --executor process)") from None
    return ray


def run_ray(jobs: list[RunConfig], on_result: Callback, address: Optional[str] = None, cpus_per_task: int = 1,
            num_cpus: Optional[int] = None, retries: int = 1) -> None:
    """Run ``jobs`` as Ray tasks; ``on_result(job, result)`` is called as each one ends.

    Args:
        address: a running cluster (``ray://host:10001`` or ``host:6379``, or ``auto``); ``None``
            starts a local Ray instance for this call and stops it afterwards.
        cpus_per_task: CPUs each run asks Ray for, and PyTorch threads it uses.
        num_cpus: CPUs of the local instance (only without ``address``; default: all).
        retries: how many times a failed run is tried again.
    """
    if cpus_per_task < 1:
        raise ValueError(f"--cpus-per-task must be >= 1, got {cpus_per_task}")
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        try:
            ray.init(address=address, **kwargs)
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            raise RayUnavailableError(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from exc
        started = True
    try:
        task = ray.remote(num_cpus=cpus_per_task, max_calls=1, max_retries=0)(run_job)
        pending: dict[Any, tuple[int, int]] = {}

        def submit(i: int, attempt: int) -> None:
            pending[task.remote(attempt_config(jobs[i], attempt), cpus_per_task)] = (i, attempt)

        for i in range(len(jobs)):
            submit(i, 0)
        t0 = time.time()
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            i, attempt = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead worker or a task error, reported below
                result = failed_result(jobs[i], f"Ray task failed ({type(exc).__name__}): {str(exc)[:2000]}")
            if result["status"] != "ok" and attempt < retries:
                print(f"[ray {time.time() - t0:6.0f}s] {jobs[i].recipe} seed {jobs[i].seed}: "
                      f"{result['error'][:200]}; retrying", file=sys.stderr, flush=True)
                submit(i, attempt + 1)
                continue
            result["attempts"] = attempt + 1
            on_result(jobs[i], result)
    finally:
        if started:
            ray.shutdown()
