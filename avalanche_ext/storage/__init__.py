"""Replay buffers that subclass Avalanche's ``ExemplarsBuffer``."""

from .exstream import ClusterStore, ExStreamBuffer

__all__ = ["ClusterStore", "ExStreamBuffer"]
