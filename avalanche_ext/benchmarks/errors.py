"""The errors of the benchmarks layer: data that is not on this machine, or not readable."""

from __future__ import annotations


class DataNotFoundError(FileNotFoundError):
    """The files a benchmark needs are not on this machine."""


class CorruptDataError(DataNotFoundError, ValueError):
    """A data file is there but is not what its name promises (bad header, truncated, garbage).

    The message names the file and what is wrong with it. A subclass of
    :class:`DataNotFoundError` (the data needed is not usable here) and of ``ValueError``.
    """


__all__ = ["CorruptDataError", "DataNotFoundError"]
