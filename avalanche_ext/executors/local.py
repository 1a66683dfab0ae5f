"""Local executors: jobs run in this process (serial) or in a pool of fresh worker processes.

The process pool starts workers from a ``forkserver`` that has imported the library once,
so a worker starts fast, never inherits a used thread pool, and reports its own peak
memory. Each worker runs one job and exits; a job that raises, or whose worker dies, is
retried once and then reported as failed without stopping the others. A retried job that
writes checkpoints resumes from its last one instead of starting again.

On a machine with several GPUs each worker gets its own (see :mod:`.gpu_slots`): a job asked
for ``auto`` or ``cuda`` runs on its worker's GPU, ``cpu`` and an explicit ``cuda:N`` stay as asked.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterable, Optional

from ..runner import RunConfig
from . import gpu_slots
from .jobs import Callback, attempt_config, failed_result, run_job


def run_serial(jobs: Iterable[RunConfig], on_result: Callback, threads: Optional[int] = None, retries: int = 1) -> None:
    """Run ``jobs`` one after another in this process, each retried up to ``retries`` times."""
    for cfg in jobs:
        for attempt in range(retries + 1):
            result = run_job(attempt_config(cfg, attempt), threads)
            if result["status"] == "ok" or attempt == retries:
                break
        result["attempts"] = attempt + 1
        on_result(cfg, result)


def run_pool(jobs: list[RunConfig], on_result: Callback, workers: int, threads: Optional[int] = None,
             retries: int = 1) -> None:
    """Run ``jobs`` on ``workers`` fresh processes (one job per process), each on its own GPU where there are GPUs."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["avalanche_ext._preload"])
    attempts = {i: 0 for i in range(len(jobs))}
    pending = list(range(len(jobs)))
    n_gpus = gpu_slots.gpus_for(jobs)
    while pending:
        broken = False
        # A fresh queue of GPU slots per pool: the slots of workers a broken pool took down are not lost.
        slots: Any = gpu_slots.make_slots(ctx, workers, n_gpus) if n_gpus else None
        pinned = {"initializer": gpu_slots.take_slot, "initargs": (slots,)} if slots is not None else {}
        job = gpu_slots.run_on_slot if slots is not None else run_job
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1, **pinned) as pool:
            futures = {pool.submit(job, attempt_config(jobs[i], attempts[i]), threads): i for i in pending}
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
                        result = failed_result(jobs[i], f"worker process died ({e})")
                    if result["status"] != "ok" and attempts[i] <= retries:
                        pending.append(i)
                        continue
                    result["attempts"] = attempts[i]
                    on_result(jobs[i], result)
        if broken:
            # A dead worker breaks the whole pool: the jobs it took down are retried in a new one.
            pending = sorted(set(pending))
