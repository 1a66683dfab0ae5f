"""One ``SupervisedPlugin`` per method."""

from .guards import FiniteLossGuard, NonFiniteLossError

__all__ = ["FiniteLossGuard", "NonFiniteLossError"]
