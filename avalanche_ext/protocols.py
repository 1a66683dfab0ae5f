"""Protocols and names that parts of the pack share without importing one another.

:data:`FAMILIES`: the taxonomy families, in the order recipes are listed and reports are sorted.

:class:`MemoryReporting`: models, plugins and templates that store something per task (masks,
embeddings, buffers, generators) say how many bytes in ``memory_report()``. The runner collects
every report of a strategy with :func:`collect_memory_reports` and logs it to MLflow as
``memory.<key>`` parameters.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Number = int | float
"""A value of a memory report: a count or a number of bytes."""

FAMILIES = ("baseline", "replay", "regularization", "architectural", "hybrid")
"""The families of the continual-learning taxonomy, in display order."""


@runtime_checkable
class MemoryReporting(Protocol):
    """An object that can say what it stores, in bytes or counts.

    Keys are short, lower-case and without the owner's name (``bytes_per_task``,
    ``mask_bytes_per_task``, ``latent_bytes``, ...); values are numbers.
    """

    def memory_report(self) -> dict[str, Number]:
        ...


def collect_memory_reports(strategy: Any) -> dict[str, Number]:
    """Every memory report of ``strategy``: the strategy itself, its model and its plugins.

    Keys are ``memory.<key>``; when two objects report the same key, the later one's key is
    prefixed with its class name (``memory.<Class>.<key>``) so that nothing is overwritten.
    """
    owners = [strategy, getattr(strategy, "model", None), *getattr(strategy, "plugins", [])]
    report: dict[str, Number] = {}
    seen: set[int] = set()
    for owner in owners:
        if owner is None or id(owner) in seen or not isinstance(owner, MemoryReporting):
            continue
        seen.add(id(owner))
        for key, value in owner.memory_report().items():
            name = f"memory.{key}"
            if name in report:
                name = f"memory.{type(owner).__name__}.{key}"
            report[name] = value
    return report


__all__ = ["FAMILIES", "MemoryReporting", "Number", "collect_memory_reports"]
