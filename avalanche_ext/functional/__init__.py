"""Pure maths on tensors and arrays, with no strategy in sight."""

from .cl_metrics import average_accuracy, backward_transfer, forgetting, summarize

__all__ = ["average_accuracy", "backward_transfer", "forgetting", "summarize"]
