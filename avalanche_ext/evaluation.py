"""Quick evaluation outside Avalanche's evaluator, for examples and scripts."""

from __future__ import annotations

from typing import Any, Iterable

import torch


@torch.no_grad()
def stream_accuracy(model: torch.nn.Module, stream: Iterable[Any], batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` over every sample of every experience of ``stream``.

    Each experience's data is read in its eval transform group; task-aware models
    (Avalanche's ``MultiTaskModule``) get each sample's task label; the model's train/eval
    mode is restored afterwards.
    """
    from avalanche.models import MultiTaskModule

    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for exp in stream:
            for x, y, t in torch.utils.data.DataLoader(exp.dataset.eval(), batch_size=batch_size):
                out = model(x, t) if isinstance(model, MultiTaskModule) else model(x)
                correct += int((out.argmax(1) == y).sum())
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("the stream holds no sample")
    return correct / total
