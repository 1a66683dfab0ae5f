"""Rehearsal as in the ExStream paper: store the new samples, then train one pass over the buffer."""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from avalanche.training.storage_policy import ExemplarsBuffer

__all__ = ["BufferRehearsalPlugin"]


class BufferRehearsalPlugin(SupervisedPlugin):
    """Train on the whole replay buffer, after putting the experience's samples in it.

    Idea: in the streaming protocol of Hayes, Cahill & Kanan (2019), every arriving sample
    is first given to the memory, and the learner then trains one epoch on the memory's
    whole content; the sample itself is learned only through the memory. With this plugin
    each (online mini-)experience is inserted with the buffer's ``post_adapt`` and the
    strategy's training set for that experience is replaced by the buffer, so
    ``train_epochs`` passes go over every stored vector and nothing else. All buffers get
    the same rehearsal, so only what they keep differs.

    Unlike Avalanche's ``ReplayPlugin``, which mixes a few memory samples into each
    mini-batch of new data, every stored vector is rehearsed at every step of the
    stream, which is what a memory of merged cluster centres (ExStream) is made for.

    Paper: T. L. Hayes, N. D. Cahill, C. Kanan, "Memory Efficient Experience Replay for
    Streaming Learning", ICRA 2019, https://arxiv.org/abs/1809.05922

    Scenarios: class-, task- and domain-incremental (the buffer keeps task labels).

    Args:
        storage_policy: any Avalanche ``ExemplarsBuffer`` holding inputs:
            :class:`~avalanche_ext.storage.ExStreamBuffer`, ``ReservoirSamplingBuffer``,
            ``ClassBalancedBuffer``, ...

    Raises:
        ValueError: ``storage_policy`` is not an ``ExemplarsBuffer``, or it stores latent
            features (rehearse those into the head with
            :class:`~avalanche_ext.plugins.ExStreamPlugin`).

    Example:
        >>> buffer = ExStreamBuffer(200, per_class=20)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=ce, train_mb_size=128,
        ...                  train_epochs=1, plugins=[BufferRehearsalPlugin(buffer)])
        >>> for exp in online_train_stream(stream, 10):
        ...     strategy.train(exp)
    """

    def __init__(self, storage_policy: ExemplarsBuffer):
        super().__init__()
        if not isinstance(storage_policy, ExemplarsBuffer):
            raise ValueError(f"BufferRehearsalPlugin needs an Avalanche ExemplarsBuffer, got "
                             f"{type(storage_policy).__name__}")
        if getattr(storage_policy, "latent", False):
            raise ValueError("BufferRehearsalPlugin trains the whole model on the buffer, which here holds latent "
                             "features: use ExStreamPlugin(buffer, head=...) to rehearse them into the head")
        self.storage_policy = storage_policy

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        self.storage_policy.post_adapt(strategy, strategy.experience)
        strategy.adapted_dataset = self.storage_policy.buffer.train()

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state (for buffers that have one, like ExStream's)."""
        if not hasattr(self.storage_policy, "state_dict"):
            raise NotImplementedError(f"{type(self.storage_policy).__name__} has no state_dict; checkpoint the "
                                      "whole strategy instead (avalanche_ext.checkpoint)")
        return {"buffer": self.storage_policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.storage_policy.load_state_dict(state["buffer"])
