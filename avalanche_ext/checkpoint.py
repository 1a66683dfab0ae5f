"""Per-experience checkpoints of a run, so that ``--resume`` continues where a run died.

A checkpoint is a versioned dictionary written with ``torch.save`` (standard pickle, not
dill) to a temporary file that is then renamed over the previous one, so a process
killed while writing leaves the previous checkpoint intact. It holds:

* ``identity``: recipe, benchmark, scenario, seed, stream length, protocol and every
  resolved hyper-parameter; a checkpoint is only ever loaded into the same run;
* ``progress``: the training steps done, the accuracy matrix so far, the training time
  and the MLflow run id (a resumed run continues that MLflow run);
* ``rng``: the states of Python's, NumPy's and PyTorch's generators;
* ``state``: the strategy's state, that is its attributes (model, optimizer, clock,
  plugins with their buffers, Fisher matrices, masks, generators, template-specific
  attributes) minus the transient ones (the current data loader, mini-batch, loss,
  experience). The strategy object itself is not saved: on resume the recipe builds it
  again from the same configuration and the saved attributes replace the new ones, so
  the model, optimizer and plugins keep their references to one another. Loggers stay
  the new run's own objects (they are referred to, not copied). Functions defined inside
  a recipe (closures, lambdas: configuration, not state) are not saved either; on resume
  each is taken from the same place in the freshly built strategy.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pickle
import random
import types
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

CHECKPOINT_VERSION = 1

#: Strategy attributes that only live during one experience or one mini-batch.
TRANSIENT = frozenset({
    "experience", "adapted_dataset", "dataloader", "mbatch", "mb_output", "loss", "current_eval_stream",
    "_eval_streams", "_stop_training", "is_training",
})


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint belongs to another run (recipe, benchmark, seed or settings differ)."""


class Unsaved:
    """Stands for a function that was not saved; replaced on restore by the rebuilt strategy's one."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(f"the function {self.name} was not saved in the checkpoint and the rebuilt "
                              f"strategy has none at the same place")

    def __repr__(self) -> str:
        return f"Unsaved({self.name!r})"


def _is_local_function(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType) and ("<locals>" in obj.__qualname__ or obj.__name__ == "<lambda>")


class _Pickler(pickle.Pickler):
    """Pickles objects by value except the ``external`` ones (saved by name) and local functions."""

    def __init__(self, file, external: dict[int, str]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._external = external

    def persistent_id(self, obj: Any) -> Optional[str]:
        return self._external.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        if _is_local_function(obj):
            return Unsaved, (obj.__qualname__,)
        if isinstance(obj, types.GeneratorType):
            return _generator_reduce(obj)
        return NotImplemented


def _generator_reduce(gen: types.GeneratorType) -> tuple:
    """A generator not started yet is saved as the call that makes it; a running one cannot be saved.

    Plugins create their replay iterators (``iter(loader)``, ``cycle(loader)``) at the end of an
    experience, when checkpoints are written, and start them in the next one: calling the same
    function again on the restored arguments gives an identical generator.
    """
    name = f"{gen.gi_frame.f_globals.get('__name__') if gen.gi_frame else '?'}.{gen.gi_code.co_qualname}"
    if inspect.getgeneratorstate(gen) != inspect.GEN_CREATED or "<locals>" in gen.gi_code.co_qualname:
        raise CheckpointError(f"a generator in use ({name}) cannot be saved")
    return _restart_generator, (gen.gi_frame.f_globals["__name__"], gen.gi_code.co_qualname,
                                dict(gen.gi_frame.f_locals))


def _restart_generator(module: str, qualname: str, arguments: dict[str, Any]) -> types.GeneratorType:
    func: Any = importlib.import_module(module)
    for part in qualname.split("."):
        func = getattr(func, part)
    return func(**arguments)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, external: dict[str, Any]):
        super().__init__(file)
        self._external = external

    def persistent_load(self, pid: str) -> Any:
        try:
            return self._external[pid]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to {pid!r}, which this run does not have") from None


def _externals(strategy: Any) -> dict[str, Any]:
    """Objects a checkpoint refers to instead of copying: the strategy and its loggers."""
    named = {"strategy": strategy}
    evaluator = getattr(strategy, "evaluator", None)
    for i, lg in enumerate(getattr(evaluator, "loggers", None) or []):
        named[f"logger{i}"] = lg
    return named


def _parameter_hooks(model: Any) -> list[tuple[str, str, str]]:
    """Gradient hooks on the model's parameters, as (parameter, module, method) names.

    PyTorch does not pickle tensor hooks (PackNet keeps pruned weights frozen with one), so
    they are saved by name and registered again on restore. Only bound methods of the
    model's own modules can be saved that way.
    """
    if not isinstance(model, torch.nn.Module):
        return []
    names = {id(m): n for n, m in model.named_modules()}
    hooks = []
    for pname, p in model.named_parameters():
        for hook in (getattr(p, "_backward_hooks", None) or {}).values():
            owner = getattr(hook, "__self__", None)
            if owner is None or id(owner) not in names:
                raise CheckpointError(f"the gradient hook {hook!r} on parameter {pname} cannot be saved: "
                                      f"only methods of the model's modules can be registered again")
            hooks.append((pname, names[id(owner)], hook.__func__.__name__))
    return hooks


def capture_state(strategy: Any) -> bytes:
    """The strategy's state as bytes (see the module docstring for what is kept)."""
    payload = {k: v for k, v in vars(strategy).items() if k not in TRANSIENT}
    payload["__parameter_hooks__"] = _parameter_hooks(getattr(strategy, "model", None))
    named = _externals(strategy)
    buf = io.BytesIO()
    try:
        _Pickler(buf, {id(obj): name for name, obj in named.items()}).dump(payload)
    except Exception as exc:  # pickling errors come in many types
        raise CheckpointError(f"cannot checkpoint {type(strategy).__name__}: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def restore_state(strategy: Any, blob: bytes) -> None:
    """Put the state captured by :func:`capture_state` back into a freshly built ``strategy``."""
    loaded = _Unpickler(io.BytesIO(blob), _externals(strategy)).load()
    hooks = loaded.pop("__parameter_hooks__", [])
    _take_functions(vars(strategy), loaded, set(), depth=0)
    strategy.__dict__.update(loaded)
    if hooks:
        params = dict(strategy.model.named_parameters())
        modules = dict(strategy.model.named_modules())
        for pname, mname, method in hooks:
            params[pname].register_hook(getattr(modules[mname], method))


def _take_functions(fresh: Any, loaded: Any, seen: set[int], depth: int) -> None:
    """Replace every :class:`Unsaved` in ``loaded`` by what ``fresh`` holds at the same place."""
    if depth > 6 or id(loaded) in seen:
        return
    seen.add(id(loaded))
    if isinstance(loaded, dict) and isinstance(fresh, dict):
        for key, value in loaded.items():
            if isinstance(value, Unsaved):
                if key in fresh:
                    loaded[key] = fresh[key]
            elif key in fresh:
                _take_functions(fresh[key], value, seen, depth + 1)
    elif isinstance(loaded, list) and isinstance(fresh, list) and len(loaded) == len(fresh):
        for i, value in enumerate(loaded):
            if isinstance(value, Unsaved):
                loaded[i] = fresh[i]
            else:
                _take_functions(fresh[i], value, seen, depth + 1)
    elif type(loaded) is type(fresh) and hasattr(loaded, "__dict__") and not isinstance(loaded, type):
        _take_functions(vars(fresh), vars(loaded), seen, depth + 1)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _describe_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    keys = sorted(set(saved) | set(current), key=str)
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
    return "; ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else "")


class Checkpointer:
    """Saves and loads the checkpoint of one run.

    Args:
        path: the checkpoint file.
        identity: what makes the run this run (compared on load).
    """

    def __init__(self, path: str | Path, identity: dict[str, Any]):
        self.path = Path(path)
        self.identity = {k: _plain(v) for k, v in identity.items()}

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
                f"{self.path} belongs to another run ({_describe_difference(ckpt['identity'], self.identity)}); "
                f"drop --resume to start again, or use another --checkpoint-dir")
        return ckpt

    def restore(self, strategy: Any, ckpt: dict[str, Any]) -> dict[str, Any]:
        """Load ``ckpt`` into ``strategy`` and the RNGs; returns its ``progress``."""
        restore_state(strategy, ckpt["state"])
        set_rng_state(ckpt["rng"])
        return ckpt["progress"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """Make hyper-parameter values comparable after a round trip through ``torch.save``."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
