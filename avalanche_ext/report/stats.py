"""The one convention every table follows: mean ± sample standard deviation over seeds."""

from __future__ import annotations

import math
from typing import Iterable, Optional

import numpy as np

#: How every table of the reports states its spread; the results pages say it once.
STD_CONVENTION = ("mean ± sample standard deviation over seeds (ddof = 1, the n - 1 denominator); "
                  "a single seed shows its value alone")


def mean_std(values: Iterable[Optional[float]]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of ``values``, ``None`` and NaN left out.

    The standard deviation is NaN for fewer than two values, the mean for none.

    Example:
        >>> mean_std([0.5, 0.7])
        (0.6, 0.14142135623730948)
        >>> mean_std([0.5])
        (0.5, nan)
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return float("nan"), float("nan")
    mean = float(np.mean(vals))
    return mean, float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan")


def mean_spread(values: Iterable[Optional[float]]) -> tuple[float, float]:
    """:func:`mean_std` with a spread of 0 for a single value, for tables that print one seed as ``x ± 0``.

    Example:
        >>> mean_spread([0.5])
        (0.5, 0.0)
    """
    mean, std = mean_std(values)
    return mean, 0.0 if math.isnan(std) else std


def welch_p(a: Iterable[Optional[float]], b: Iterable[Optional[float]]) -> float:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` (per-seed values) share a mean.

    NaN with fewer than two values on a side, or when neither side varies.

    Example:
        >>> round(welch_p([0.90, 0.92, 0.94], [0.80, 0.82, 0.84]), 4)
        0.0036
    """
    from scipy.stats import ttest_ind

    xs, ys = ([float(v) for v in vals if v is not None and not math.isnan(float(v))] for vals in (a, b))
    if len(xs) < 2 or len(ys) < 2 or (np.ptp(xs) == 0 and np.ptp(ys) == 0):
        return float("nan")
    return float(ttest_ind(xs, ys, equal_var=False).pvalue)


def fmt(mean: float, std: float, pct: bool = True, digits: int = 1) -> str:
    """``"47.0 ± 1.2"`` (in % when ``pct``); ``"47.0"`` without a spread; ``"-"`` without a value."""
    if mean is None or math.isnan(mean):
        return "-"
    scale = 100.0 if pct else 1.0
    text = f"{mean * scale:.{digits}f}"
    return text if std is None or math.isnan(std) else f"{text} ± {std * scale:.{digits}f}"
