"""A strategy's state: plugins with ``state_dict`` through it, everything else as pickled attributes.

A plugin with ``state_dict()`` / ``load_state_dict()`` is saved through them: the checkpoint
holds the dictionary it returns, and refers to the plugin object itself by its place in
``strategy.plugins``, so that on restore every reference to it (from the plugin list, other
plugins or the strategy) is the freshly built strategy's plugin, which then loads the saved
dictionary. Everything else (model, optimizer, Avalanche's own plugins, clock, template
attributes) is pickled as the strategy's attributes (see :mod:`avalanche_ext.checkpoint.pickling`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from .errors import CheckpointError
from .pickling import dumps, loads, take_functions

#: Strategy attributes that only live during one experience or one mini-batch.
TRANSIENT = frozenset({
    "experience", "adapted_dataset", "dataloader", "mbatch", "mb_output", "loss", "current_eval_stream",
    "_eval_streams", "_stop_training", "is_training",
})

_HOOKS = "__parameter_hooks__"
_PLUGINS = "__plugin_states__"

def _externals(strategy: Any) -> dict[str, Any]:
    """Objects a checkpoint refers to instead of copying: the strategy, its loggers and its plugins.

    A plugin is referred to (``plugin<i>``) only when it is saved through its ``state_dict``.
    """
    named = {"strategy": strategy}
    evaluator = getattr(strategy, "evaluator", None)
    for i, lg in enumerate(getattr(evaluator, "loggers", None) or []):
        named[f"logger{i}"] = lg
    for i, plugin in enumerate(getattr(strategy, "plugins", None) or []):
        named[f"plugin{i}"] = plugin
    return named


def _plugin_states(strategy: Any) -> dict[str, dict[str, Any]]:
    """``{"plugin<i>": {"type": ..., "state": plugin.state_dict()}}`` for every plugin that has one."""
    states = {}
    for i, plugin in enumerate(getattr(strategy, "plugins", None) or []):
        if not (callable(getattr(plugin, "state_dict", None)) and callable(getattr(plugin, "load_state_dict", None))):
            continue
        try:
            state = plugin.state_dict()
        except NotImplementedError:  # e.g. a rehearsal plugin over a buffer without a state: pickled whole
            continue
        states[f"plugin{i}"] = {"type": type(plugin).__qualname__, "state": state}
    return states


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
    """The strategy's state as bytes (see the module docstring for what is kept and how)."""
    payload = {k: v for k, v in vars(strategy).items() if k not in TRANSIENT}
    payload[_HOOKS] = _parameter_hooks(getattr(strategy, "model", None))
    payload[_PLUGINS] = states = _plugin_states(strategy)
    named = _externals(strategy)
    external = {k: v for k, v in named.items() if not k.startswith("plugin") or k in states}
    try:
        return dumps(payload, external)
    except Exception as exc:  # pickling errors come in many types
        raise CheckpointError(f"cannot checkpoint {type(strategy).__name__}: {type(exc).__name__}: {exc}") from exc


def restore_state(strategy: Any, blob: bytes) -> None:
    """Put the state captured by :func:`capture_state` back into a freshly built ``strategy``.

    The strategy keeps its own ``device``: the model and the optimizer's state move there (see
    :func:`to_device`), so a run checkpointed on a GPU resumes on the CPU or another GPU.
    """
    named = _externals(strategy)
    loaded = loads(blob, named)
    hooks = loaded.pop(_HOOKS, [])
    states = loaded.pop(_PLUGINS, {})
    for name, saved in states.items():
        plugin = named.get(name)
        if type(plugin).__qualname__ != saved["type"]:
            raise CheckpointError(f"the checkpoint's {name} is a {saved['type']}, the rebuilt strategy's is a "
                                  f"{type(plugin).__qualname__}: the recipe builds another strategy now")
    take_functions(vars(strategy), loaded)
    loaded.pop("device", None)  # the rebuilt strategy's device, not the one the checkpoint was written on
    strategy.__dict__.update(loaded)
    if hooks:
        params = dict(strategy.model.named_parameters())
        modules = dict(strategy.model.named_modules())
        for pname, mname, method in hooks:
            params[pname].register_hook(getattr(modules[mname], method))
    for name, saved in states.items():
        named[name].load_state_dict(saved["state"])
    to_device(strategy)


def to_device(strategy: Any) -> None:
    """Move the strategy's model and its optimizer's state to ``strategy.device``.

    A checkpoint loads on the CPU; the model goes to the strategy's device. Where the move makes
    new parameter objects (PyTorch keeps them between the CPU and CUDA, not for every device),
    the optimizer is pointed at the new ones. The optimizer then reloads its own state, which
    puts every state tensor where its parameter is (a step counter stays where the optimizer
    keeps it). Plugins' tensors stay on the CPU: each plugin moves what it needs.
    """
    device = torch.device(getattr(strategy, "device", "cpu"))
    model = getattr(strategy, "model", None)
    if not isinstance(model, torch.nn.Module):
        return
    before = list(model.parameters())
    model.to(device)
    moved = {id(old): new for old, new in zip(before, model.parameters())}
    optimizer = getattr(strategy, "optimizer", None)
    if not isinstance(optimizer, torch.optim.Optimizer):
        return
    for group in optimizer.param_groups:
        group["params"] = [moved.get(id(p), p) for p in group["params"]]
    optimizer.state = defaultdict(dict, {moved.get(id(p), p): s for p, s in optimizer.state.items()})
    if optimizer.state:
        optimizer.load_state_dict(optimizer.state_dict())
