"""Loggers: MLflow tracking and concise progress output."""

from .mlflow_logger import (
    DEFAULT_TRACKING_URI,
    MLflowLogger,
    TrackingUnavailableError,
    check_tracking,
    resolve_tracking_uri,
    tracking_client,
)
from .progress import ProgressLogger

__all__ = [
    "DEFAULT_TRACKING_URI",
    "MLflowLogger",
    "ProgressLogger",
    "TrackingUnavailableError",
    "check_tracking",
    "resolve_tracking_uri",
    "tracking_client",
]
