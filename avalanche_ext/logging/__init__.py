"""Tracking: the MLflow store, the MLflow logger and concise progress output.

``store`` resolves and checks the tracking store (:class:`Tracking`), ``describe`` turns a
strategy into parameters, ``matrix`` gathers the accuracy matrix, ``mlflow_logger`` is the
Avalanche logger that writes all of it to a run; ``progress`` prints one line per epoch.
"""

from .describe import describe_strategy, package_versions
from .matrix import AccuracyMatrix
from .mlflow_logger import MLflowLogger
from .progress import ProgressLogger
from .store import (
    DEFAULT_TRACKING_URI,
    Tracking,
    TrackingUnavailableError,
    check_tracking,
    default_artifact_location,
    ensure_experiment,
    resolve_tracking_uri,
    tracking_client,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "AccuracyMatrix",
    "MLflowLogger",
    "ProgressLogger",
    "Tracking",
    "TrackingUnavailableError",
    "check_tracking",
    "default_artifact_location",
    "describe_strategy",
    "ensure_experiment",
    "package_versions",
    "resolve_tracking_uri",
    "tracking_client",
]
