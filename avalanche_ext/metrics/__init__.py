"""Avalanche ``PluginMetric`` subclasses for what the pack's methods measure."""

from .task_inference import (
    ExperienceTaskInference, InfersTasks, StreamTaskInference, TaskInferenceAccuracy, task_inference_metrics,
)

__all__ = [
    "ExperienceTaskInference", "InfersTasks", "StreamTaskInference", "TaskInferenceAccuracy", "task_inference_metrics",
]
