"""The checkpoint file of one run: written atomically, checked on load against the run's identity."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..training.files import atomic_save
from .errors import CheckpointError, CheckpointMismatchError
from .state import capture_state, restore_state

#: The format; 2 saves plugins that have ``state_dict`` through it.
CHECKPOINT_VERSION = 2


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's generators, and of every CUDA device's once CUDA is in use."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned.

    The CUDA generators are restored only where torch sees as many CUDA devices as the
    checkpoint has states for; elsewhere (a checkpoint of a GPU run resumed on the CPU, or on
    another number of GPUs) a warning says the CUDA random numbers start afresh.
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    saved = state.get("cuda")
    if saved is None:
        return
    here = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if here == len(saved):
        torch.cuda.set_rng_state_all(saved)
    else:
        warnings.warn(f"the checkpoint holds the random states of {len(saved)} CUDA device(s) and torch sees {here} "
                      f"here: the CUDA random numbers are not restored, so the resumed run may differ from an "
                      f"uninterrupted one", stacklevel=2)


def describe_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """What differs between two identities, e.g. ``hp.epochs: checkpoint 1, now 2`` (six at most)."""
    keys = sorted(set(saved) | set(current), key=str)
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
    return "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")


def identity_hash(identity: dict[str, Any]) -> str:
    """A short hash of a run's identity (8 hex digits), part of its checkpoint's file name."""
    import hashlib
    import json

    text = json.dumps({k: _plain(v) for k, v in identity.items()}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _plain(value: Any) -> Any:
    """Make hyper-parameter values comparable after a round trip through ``torch.save``."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Checkpointer:
    """Saves and loads the checkpoint of one run.

    Args:
        path: the checkpoint file.
        identity: what makes the run this run (compared on load).
    """

    def __init__(self, path: str | Path, identity: dict[str, Any]):
        self.path = Path(path)
        self.identity = {k: _plain(v) for k, v in identity.items()}

    def identity_of(self, path: str | Path) -> dict[str, Any]:
        """The identity and progress saved in another checkpoint file (raises :class:`CheckpointError`)."""
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            return {"identity": ckpt["identity"], "progress": ckpt["progress"]}
        except Exception as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, strategy: Any, progress: dict[str, Any]) -> None:
        atomic_save({"version": CHECKPOINT_VERSION, "identity": self.identity, "progress": progress,
                     "rng": rng_state(), "state": capture_state(strategy)}, self.path)

    def load(self) -> dict[str, Any]:
        """Read and check the checkpoint; raises :class:`CheckpointMismatchError` if it is another run's."""
        try:
            ckpt = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(ckpt, dict) or "version" not in ckpt:
            raise CheckpointError(f"{self.path} is not an avalanche-ext checkpoint")
        if ckpt["version"] != CHECKPOINT_VERSION:
            raise CheckpointError(f"{self.path} has checkpoint format {ckpt['version']}, this version reads "
                                  f"{CHECKPOINT_VERSION}; start the run again without --resume")
        if ckpt["identity"] != self.identity:
            raise CheckpointMismatchError(
                f"{self.path} belongs to another run ({describe_difference(ckpt['identity'], self.identity)}); "
                f"drop --resume to start again, or use another --checkpoint-dir")
        return ckpt

    def restore(self, strategy: Any, ckpt: dict[str, Any]) -> dict[str, Any]:
        """Load ``ckpt`` into ``strategy`` and the RNGs; returns its ``progress``.

        The model and the optimizer's state end up on ``strategy.device``, whatever device the
        checkpoint was written on (see :func:`~avalanche_ext.checkpoint.restore_state`).
        """
        restore_state(strategy, ckpt["state"])
        set_rng_state(ckpt["rng"])
        return ckpt["progress"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
