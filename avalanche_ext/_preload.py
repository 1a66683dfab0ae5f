"""Imported once by the process pool's forkserver so that workers start with everything loaded."""

from . import runner  # noqa: F401
from .registry import discover

discover()
