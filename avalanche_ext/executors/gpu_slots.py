"""One GPU per worker of the local process pool.

The pool's workers share a queue of GPU slots dealt round robin over the CUDA devices torch
sees (4 workers on 2 GPUs: slots 0, 1, 0, 1). A worker takes a slot when it starts (the
pool's initializer, :func:`take_slot`) and makes that GPU its current CUDA device; its job,
asked for ``auto`` or ``cuda``, runs on ``cuda:<slot>`` (:func:`run_on_slot`); ``cpu`` and an
explicit ``cuda:N`` stay as asked. As each worker runs one job, the slot goes back to the
queue when the job ends, for the worker that replaces it: however long the jobs take, every
GPU keeps as many workers as it was dealt.
"""

from __future__ import annotations

import queue
from typing import Any, Optional, Sequence

import torch

from ..devices import cuda_device_count, parse_device, worker_device
from ..runner import RunConfig
from .jobs import run_job

#: How long a starting worker waits for a free slot before it runs without one (it should never wait).
SLOT_TIMEOUT_S = 300.0

_slot: Optional[int] = None
_slots: Any = None


def gpus_for(jobs: Sequence[RunConfig]) -> int:
    """The CUDA devices to spread ``jobs`` over: all that torch sees if some job asks for ``auto`` or ``cuda``, else 0."""
    if not any(parse_device(job.device) in ("auto", "cuda") for job in jobs):
        return 0
    return cuda_device_count()


def deal(workers: int, n_gpus: int) -> list[int]:
    """The GPU of each of ``workers`` workers, round robin over ``n_gpus`` devices."""
    if n_gpus < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    return [i % n_gpus for i in range(workers)]


def make_slots(ctx: Any, workers: int, n_gpus: int) -> Any:
    """A queue (of the multiprocessing context ``ctx``) holding the slots of :func:`deal`."""
    slots = ctx.Queue()
    for gpu in deal(workers, n_gpus):
        slots.put(gpu)
    return slots


def take_slot(slots: Any) -> None:
    """The pool's worker initializer: take a slot from ``slots`` and make its GPU the current CUDA device."""
    global _slot, _slots
    _slots = slots
    try:
        _slot = slots.get(timeout=SLOT_TIMEOUT_S)
    except queue.Empty:
        _slot = None
        return
    torch.cuda.set_device(_slot)


def run_on_slot(cfg_dict: dict[str, Any], threads: Optional[int] = None) -> dict[str, Any]:
    """Run one job on this worker's GPU (see :func:`~avalanche_ext.devices.worker_device`), then give the slot back."""
    try:
        return run_job({**cfg_dict, "device": worker_device(cfg_dict.get("device"), _slot)}, threads)
    finally:
        if _slot is not None:
            _slots.put(_slot)


__all__ = ["SLOT_TIMEOUT_S", "deal", "gpus_for", "make_slots", "run_on_slot", "take_slot"]
