"""The streaming protocol: a train stream cut into small online mini-experiences.

Each original experience is shuffled (seeded) and dealt into mini-experiences of
``experience_size`` samples with Avalanche's :func:`split_online_stream`, so a strategy
trained once on each mini-experience (``train_epochs=1``) sees every sample exactly once.

Example:
    >>> stream = build_benchmark("split_digits", "class", seed=0)
    >>> for exp, ends_origin in with_boundaries(online_train_stream(stream, 10)):
    ...     strategy.train(exp)
    ...     if ends_origin:
    ...         strategy.eval(stream.test_stream)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .streams import Stream

__all__ = ["online_train_stream", "origin_index", "with_boundaries"]


def online_train_stream(
    stream: "Stream",
    experience_size: int,
    *,
    shuffle: bool = True,
    seed: Optional[int] = None,
) -> Iterable[Any]:
    """Cut ``stream.train_stream`` into online mini-experiences of ``experience_size`` samples.

    Args:
        stream: a :class:`~avalanche_ext.benchmarks.Stream`.
        experience_size: samples per mini-experience (the last one of each original
            experience may be smaller; none is dropped).
        shuffle: shuffle the samples of each original experience before cutting.
        seed: shuffling seed; ``None`` uses ``stream.seed`` so runs are reproducible.

    Returns:
        Avalanche's lazy online stream (a ``CLStream`` of ``OnlineCLExperience``; iterate it
        once). Each mini-experience keeps ``origin_experience``; see :func:`with_boundaries`.

    Raises:
        ValueError: ``experience_size`` is not a positive integer.
    """
    from avalanche.benchmarks.scenarios.online import split_online_stream

    if isinstance(experience_size, bool) or not isinstance(experience_size, int) or experience_size < 1:
        raise ValueError(f"experience_size must be an integer >= 1, got {experience_size!r}")
    return split_online_stream(
        stream.train_stream,
        experience_size,
        shuffle=shuffle,
        drop_last=False,
        access_task_boundaries=False,
        seed=stream.seed if seed is None else seed,
    )


def origin_index(exp: Any) -> int:
    """Index of the original experience a mini-experience was cut from."""
    with exp.no_attribute_masking():
        origin = exp.origin_experience
    with origin.no_attribute_masking():
        return int(origin.current_experience)


def with_boundaries(online_stream: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """Yield ``(mini_experience, ends_origin)``; ``ends_origin`` is True on the last
    mini-experience of each original experience (the moment to evaluate).

    Looks one mini-experience ahead, so it is right even when an experience's size is a
    multiple of ``experience_size`` (where Avalanche's ``is_last_subexp`` stays False).
    """
    it = iter(online_stream)
    try:
        current = next(it)
    except StopIteration:
        return
    for nxt in it:
        yield current, origin_index(nxt) != origin_index(current)
        current = nxt
    yield current, True
