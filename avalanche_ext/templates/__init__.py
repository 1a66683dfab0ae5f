"""Training templates, for methods whose phases change the training loop itself."""

from .progress_compress import ProgressCompress

__all__ = ["ProgressCompress"]
