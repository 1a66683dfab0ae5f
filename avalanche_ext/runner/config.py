"""What to run: the settings every command shares, and the configuration of one run."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, Optional


@dataclass(kw_only=True)
class RunSettings:
    """Settings every command shares (``run``, ``taxonomy``, ``sweep``): the stream, its protocol,
    hyper-parameter overrides and where results are tracked. Each has the flag of the same name."""

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


#: Fault injection for crash-recovery tests: ``AVALANCHE_EXT_KILL_AFTER=N`` (or
#: ``RunConfig.kill_after=N``) makes the run SIGKILL its own process right after writing the
#: checkpoint of training step ``N``, as a crashed machine would. It fires only in a run not
#: asked to resume: a resumed run (``--resume``, or an executor's retry) is the recovery and must
#: not crash again at the same step (in a process pool one dead worker takes its neighbours down
#: too, before they reach their own step ``N``).
KILL_AFTER_ENV = "AVALANCHE_EXT_KILL_AFTER"
