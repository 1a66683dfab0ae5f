"""Spread runs over a Ray cluster (``--executor ray``); an optional extra: ``pip install .[ray]``.

Every run is one Ray task that asks for ``cpus_per_task`` CPUs and pins PyTorch to as many
threads, so tasks never oversubscribe a node's cores. Each task runs in a fresh worker
process (``max_calls=1``), like the local process pool: no state leaks from one run to the
next and the reported peak memory is the run's own. A task that raises, or whose worker
dies, is retried once (resuming from its checkpoint if it wrote one) and then reported as
failed, without stopping the others. Every run logs to the tracking URI of its
configuration: a shared MLflow server for a cluster, or the local SQLite file when Ray runs
on this machine.

GPUs: every run asks for ``gpus_per_run`` GPUs (a fraction lets small runs share one GPU,
``0.25`` puts four on each). Left unset, a run asks for one GPU when the cluster has GPUs and
the run's device is not ``cpu``, and for none otherwise. Ray hands each task its GPUs as
``cuda:0``, ``cuda:1``..., so runs name ``auto``, ``cuda`` or ``cpu``, never ``cuda:N``. A
cluster without GPUs asked for some, or a run on ``cuda`` without any, is refused before any
run starts.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

from ..devices import parse_device
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


def gpus_per_task(jobs: list[RunConfig], gpus_per_run: Optional[float], cluster_gpus: float) -> float:
    """The GPUs each task asks Ray for (see the module docstring for the rule).

    Raises:
        ValueError: a negative count, more than one GPU but not a whole number, GPUs asked of a
            cluster that has none (or fewer), a run on ``cuda`` without GPUs, or a run naming ``cuda:N``.
    """
    devices = {parse_device(job.device) for job in jobs}
    pinned = sorted(d for d in devices if d.startswith("cuda:"))
    if pinned:
        raise ValueError(f"--device {pinned[0]}: Ray gives each run its own GPU(s), seen as cuda:0...; "
                         f"use --device cuda (or auto) with --gpus-per-run")
    if gpus_per_run is None:
        gpus_per_run = 1.0 if cluster_gpus > 0 and devices != {"cpu"} else 0.0
    if gpus_per_run < 0 or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run)):
        raise ValueError(f"--gpus-per-run must be a fraction of one GPU (0 to 1) or a whole number, got {gpus_per_run}")
    if gpus_per_run > 0 and cluster_gpus == 0:
        raise ValueError(f"--gpus-per-run {gpus_per_run:g}: the Ray cluster has no GPU; use --gpus-per-run 0 "
                         f"(and --device cpu or auto)")
    if gpus_per_run > cluster_gpus:
        raise ValueError(f"--gpus-per-run {gpus_per_run:g}: the Ray cluster has {cluster_gpus:g} GPU(s) in all")
    if gpus_per_run == 0 and "cuda" in devices:
        raise ValueError("--device cuda on Ray needs GPUs: give --gpus-per-run (e.g. 1, or 0.5 to share a GPU)")
    return float(gpus_per_run)


def run_ray(jobs: list[RunConfig], on_result: Callback, address: Optional[str] = None, cpus_per_task: int = 1,
            num_cpus: Optional[int] = None, retries: int = 1, gpus_per_run: Optional[float] = None) -> None:
    """Run ``jobs`` as Ray tasks; ``on_result(job, result)`` is called as each one ends.

    Args:
        address: a running cluster (``ray://host:10001`` or ``host:6379``, or ``auto``); ``None``
            starts a local Ray instance for this call and stops it afterwards.
        cpus_per_task: CPUs each run asks Ray for, and PyTorch threads it uses.
        num_cpus: CPUs of the local instance (only without ``address``; default: all).
        retries: how many times a failed run is tried again.
        gpus_per_run: GPUs each run asks for (fractions allowed); default: see the module docstring.

    Raises:
        RayUnavailableError: Ray is missing or the cluster cannot be reached.
        ValueError: bad settings (see :func:`gpus_per_task`), before any run starts.
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
        gpus = gpus_per_task(jobs, gpus_per_run, float(ray.cluster_resources().get("GPU", 0)))
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus, max_calls=1, max_retries=0)(run_job)
        pending: dict[Any, tuple[int, int]] = {}

        def submit(i: int, attempt: int) -> None:
            job = attempt_config(jobs[i], attempt)
            if gpus == 0 and parse_device(job["device"]) == "auto":
                job["device"] = "cpu"  # a task without GPUs must not reach for one its node has
            pending[task.remote(job, cpus_per_task)] = (i, attempt)

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
