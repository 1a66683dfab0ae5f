"""Keep Avalanche's internal deprecation notices out of the command-line output."""

from __future__ import annotations

import warnings


def quiet_deprecations() -> None:
    """Drop Deprecation/Future warnings, which Avalanche re-enables on every call of a deprecated API.

    A filter is not enough (Avalanche resets it), so the display hook skips those categories;
    every other warning is still shown.
    """
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    show = warnings.showwarning
    if getattr(show, "_quiet", False):
        return

    def showwarning(message, category, *args, **kwargs):
        if issubclass(category, (DeprecationWarning, FutureWarning)):
            return
        show(message, category, *args, **kwargs)

    showwarning._quiet = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning
