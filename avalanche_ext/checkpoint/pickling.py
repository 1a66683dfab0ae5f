"""Pickling a strategy's attributes: some objects by name, local functions and fresh generators by recipe.

``dumps`` pickles by value except the ``external`` objects (saved as their name and, on
``loads``, replaced by the object of that name in the running process), functions defined
inside a recipe (saved as :class:`Unsaved` and replaced by :func:`take_functions` with the
rebuilt strategy's function at the same place) and generators not started yet (saved as the
call that makes them).
"""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import types
from typing import Any, Optional

from .errors import CheckpointError


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


def _load_storage_on_cpu(data: bytes) -> Any:
    """Rebuild a pickled tensor storage on the CPU, whatever device it was saved from."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


class _Unpickler(pickle.Unpickler):
    """Unpickles what :class:`_Pickler` wrote; every tensor is rebuilt on the CPU (a checkpoint of a GPU
    run loads on a machine without one; the restore moves the model and optimizer to the strategy's device)."""

    def __init__(self, file, external: dict[str, Any]):
        super().__init__(file)
        self._external = external

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage_on_cpu
        return super().find_class(module, name)

    def persistent_load(self, pid: str) -> Any:
        try:
            return self._external[pid]
        except KeyError:
            raise CheckpointError(f"checkpoint refers to {pid!r}, which this run does not have") from None


def dumps(obj: Any, external: dict[str, Any]) -> bytes:
    """Pickle ``obj``; the objects of ``external`` (by name) are referred to, not copied."""
    buf = io.BytesIO()
    _Pickler(buf, {id(o): name for name, o in external.items()}).dump(obj)
    return buf.getvalue()


def loads(blob: bytes, external: dict[str, Any]) -> Any:
    """Unpickle what :func:`dumps` wrote; a name it referred to is replaced by ``external[name]``; tensors load on the CPU."""
    return _Unpickler(io.BytesIO(blob), external).load()


def take_functions(fresh: Any, loaded: Any, seen: Optional[set[int]] = None, depth: int = 0) -> None:
    """Replace every :class:`Unsaved` in ``loaded`` by what ``fresh`` holds at the same place."""
    seen = set() if seen is None else seen
    if depth > 6 or id(loaded) in seen:
        return
    seen.add(id(loaded))
    if isinstance(loaded, dict) and isinstance(fresh, dict):
        for key, value in loaded.items():
            if isinstance(value, Unsaved):
                if key in fresh:
                    loaded[key] = fresh[key]
            elif key in fresh:
                take_functions(fresh[key], value, seen, depth + 1)
    elif isinstance(loaded, list) and isinstance(fresh, list) and len(loaded) == len(fresh):
        for i, value in enumerate(loaded):
            if isinstance(value, Unsaved):
                loaded[i] = fresh[i]
            else:
                take_functions(fresh[i], value, seen, depth + 1)
    elif type(loaded) is type(fresh) and hasattr(loaded, "__dict__") and not isinstance(loaded, type):
        take_functions(vars(fresh), vars(loaded), seen, depth + 1)
