"""Replay stores: Avalanche ``ExemplarsBuffer`` subclasses and the plain stores the methods keep."""

from .cluster_store import ClusterStore
from .exstream import ExStreamBuffer
from .latent_buffer import LatentBuffer

__all__ = ["ClusterStore", "ExStreamBuffer", "LatentBuffer"]
