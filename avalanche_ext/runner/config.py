"""What to run: the settings every command shares, and the configuration of one run."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, Optional

#: The largest seed NumPy accepts (seeds are in ``[0, 2**32 - 1]``).
SEED_MAX = 2**32 - 1

#: Seconds a tracking server may keep failing before a run writes to its local spool instead.
DEFAULT_TRACKING_RETRY_S = 60.0


@dataclass(kw_only=True)
class RunSettings:
    """Settings every command shares (``run``, ``taxonomy``, ``sweep``): the stream, its protocol,
    hyper-parameter overrides and where results are tracked. Each has the flag of the same name
    (``tracking_retry_s``: ``--tracking-retry-s``; ``log_model``: ``--log-model`` / ``--no-log-model``)."""

    benchmark: str = "split_digits"
    n_experiences: Optional[int] = None
    epochs: Optional[int] = None
    overrides: dict[str, Any] = field(default_factory=dict)
    data_root: Optional[str] = None
    validation: bool = False
    online: bool = False
    online_size: int = 10
    tracking_uri: Optional[str] = None
    experiment: str = "avalanche-ext"
    tracking_retry_s: float = DEFAULT_TRACKING_RETRY_S
    log_model: bool = True
    device: str = "auto"  # see avalanche_ext.devices
    amp: Optional[str] = None  # mixed precision: "bf16", "fp16" or None
    num_workers: int = 0  # data-loader worker processes
    pin_memory: Optional[bool] = None  # None: pinned when the device is CUDA

    def shared(self) -> dict[str, Any]:
        """The :class:`RunSettings` fields of this configuration, as keyword arguments for another one."""
        return {f.name: getattr(self, f.name) for f in fields(RunSettings)}


@dataclass
class RunConfig(RunSettings):
    """One run of one recipe. Every field has a command-line flag of ``avalanche-ext run``.

    Only ``recipe`` is positional: ``RunConfig("ewc", benchmark="split_digits", seed=1)``.
    """

    recipe: str
    _: KW_ONLY
    scenario: Optional[str] = None
    seed: int = 0
    parent_run_id: Optional[str] = None
    progress: bool = True
    threads: Optional[int] = None
    checkpoint_dir: Optional[str] = None
    resume: bool = False
    stop_after: Optional[int] = None
    kill_after: Optional[int] = None  # fault injection for crash-recovery tests, see KILL_AFTER_ENV
    stop_file: Optional[str] = None  # a run stops (KILLED) once this file exists, see TrackedRun


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` if it is an integer in ``[0, 2**32 - 1]`` (what NumPy accepts).

    Args:
        seed: the seed to check.
        name: how the message names it (the CLI passes ``--seed``).

    Raises:
        ValueError: ``seed`` is not an integer in that range.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, {SEED_MAX}], got {seed!r}")
    return seed


def check_retry_budget(seconds: Any, name: str = "tracking_retry_s") -> float:
    """``seconds`` if it is a finite number >= 0 (the tracking retry budget).

    Raises:
        ValueError: a negative, NaN or infinite budget.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {seconds!r}")
    return float(seconds)


#: Fault injection for crash-recovery tests: ``AVALANCHE_EXT_KILL_AFTER=N`` (or
#: ``RunConfig.kill_after=N``) makes the run SIGKILL its own process right after writing the
#: checkpoint of training step ``N``, as a crashed machine would. It fires only in a run not
#: asked to resume: a resumed run (``--resume``, or an executor's retry) is the recovery and must
#: not crash again at the same step (in a process pool one dead worker takes its neighbours down
#: too, before they reach their own step ``N``).
KILL_AFTER_ENV = "AVALANCHE_EXT_KILL_AFTER"
