"""Which device a run uses: parse a device spec, check this machine has it, and the mixed-precision rules.

A device spec is ``auto`` (CUDA when torch sees a CUDA device, else the CPU), ``cpu``,
``cuda`` (the current CUDA device), ``cuda:N`` or ``mps`` (Apple GPUs, where torch has them).
A spec this machine cannot honour fails with :class:`DeviceUnavailableError`, a
``ValueError`` whose message says what exists instead.

Nothing here initialises CUDA: :func:`resolve_device` only asks torch whether CUDA is there
and how many devices it sees, so a parent process can check the specs of the runs it hands
to worker processes and stay free of a CUDA context.

Mixed precision (``amp``): ``bf16`` runs on CUDA and on the CPU (``torch.autocast("cpu")``
supports bfloat16); ``fp16`` needs CUDA, where its loss is scaled by a ``GradScaler``.
"""

from __future__ import annotations

import re
from typing import Optional, Union

import torch

#: The help text of ``--device``.
DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps"

#: The mixed-precision settings and their dtypes (``--amp``).
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

#: The device types on which each ``amp`` setting runs.
AMP_DEVICE_TYPES = {"bf16": ("cuda", "cpu"), "fp16": ("cuda",)}

_SPEC = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


class DeviceUnavailableError(ValueError):
    """The device asked for does not exist on this machine (or the spec is not a device)."""


def cuda_device_count() -> int:
    """CUDA devices torch sees (0 without CUDA); does not initialise CUDA."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    """Whether torch has an Apple GPU (``mps``) here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def parse_device(spec: Union[str, torch.device, None]) -> str:
    """The normalised spec (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``).

    Raises:
        DeviceUnavailableError: ``spec`` is not a device spec.
    """
    text = "auto" if spec is None else str(spec).strip().lower()
    match = _SPEC.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceUnavailableError(f"device {spec!r} is not a device: use {DEVICE_HELP}")
    return text


def resolve_device(spec: Union[str, torch.device, None] = "auto") -> torch.device:
    """The device ``spec`` stands for on this machine.

    ``auto`` is ``cuda`` when torch sees a CUDA device and ``cpu`` otherwise; ``cuda``
    without an index is the current CUDA device (in a worker pinned to a GPU, that GPU).

    Raises:
        DeviceUnavailableError: a malformed spec, or a device this machine does not have.
    """
    text = parse_device(spec)
    count = cuda_device_count()
    if text == "auto":
        return torch.device("cuda" if count else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not mps_available():
            raise DeviceUnavailableError("device 'mps': torch sees no Apple GPU (mps) here; use --device cpu or auto")
        return torch.device("mps")
    if count == 0:
        raise DeviceUnavailableError(f"device {text!r}: torch sees no CUDA device here (torch {torch.__version__}, "
                                     f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or auto")
    device = torch.device(text)
    if device.index is not None and device.index >= count:
        names = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceUnavailableError(f"device {text!r}: torch sees {count} CUDA device(s) here: {names}")
    return device


def concrete_device(device: Union[str, torch.device]) -> torch.device:
    """``device`` with the index of the current CUDA device filled in (``cuda`` -> ``cuda:K``).

    Initialises CUDA for a CUDA device: call it in the process that runs on it.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def check_amp(amp: Optional[str], device: Union[str, torch.device]) -> None:
    """Refuse a mixed-precision setting the device cannot run (see the module docstring for the rule).

    Raises:
        ValueError: ``amp`` is not ``None``, ``"bf16"`` or ``"fp16"``, or ``device`` cannot run it.
    """
    if amp is None:
        return
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {', '.join(AMP_DTYPES)} (or None), got {amp!r}")
    kind = torch.device(device).type
    if kind not in AMP_DEVICE_TYPES[amp]:
        where = " or ".join(AMP_DEVICE_TYPES[amp])
        raise ValueError(f"--amp {amp} runs on {where}, and this run's device is {kind}"
                         + ("; bf16 also runs on the CPU" if amp == "fp16" else ""))


def worker_device(spec: Union[str, torch.device, None], gpu: Optional[int]) -> str:
    """The device spec a worker pinned to CUDA device ``gpu`` gives its run.

    ``auto`` and ``cuda`` become ``cuda:<gpu>``; ``cpu``, ``mps`` and an explicit ``cuda:N``
    stay as they are; without a pinned GPU (``gpu is None``) nothing changes.
    """
    text = parse_device(spec)
    if gpu is None or text not in ("auto", "cuda"):
        return text
    return f"cuda:{gpu}"


__all__ = ["AMP_DEVICE_TYPES", "AMP_DTYPES", "DEVICE_HELP", "DeviceUnavailableError", "check_amp", "concrete_device",
           "cuda_device_count", "mps_available", "parse_device", "resolve_device", "worker_device"]
