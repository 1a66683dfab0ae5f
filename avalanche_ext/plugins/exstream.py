"""Streaming rehearsal from an ExStream buffer, on raw inputs or on latent features."""

from __future__ import annotations

from typing import Any, Optional

import torch
from avalanche.core import SupervisedPlugin

from ..storage.exstream import ExStreamBuffer

__all__ = ["ExStreamPlugin"]


class ExStreamPlugin(SupervisedPlugin):
    """Rehearse an :class:`~avalanche_ext.storage.ExStreamBuffer` at every training step.

    Idea: ExStream keeps at most $k$ vectors per class; a full class merges its two nearest
    vectors into their count-weighted mean before storing a new sample (see the buffer).
    This plugin adds a rehearsal term computed on a random mini-batch $B_m$ of the buffer
    to every training step, and inserts the experience's samples into the buffer when
    the experience ends. In the streaming protocol (one pass over small online
    mini-experiences) every sample is inserted once, right after it is learned.

    Loss: $\\mathcal{L} = \\ell(f(x), y) + \\lambda\\, \\ell(g(\\tilde x), \\tilde y)$ with
    $(\\tilde x, \\tilde y) \\sim B_m$; $g$ is the whole model when the buffer holds
    inputs, and the module named ``head`` when it holds latent features (the buffer's
    ``feature_extractor`` must then be the frozen part of the model below ``head``; the plugin
    keeps it in eval mode during training, so batch norm statistics do not move either).

    For raw inputs Avalanche's ``ReplayPlugin(storage_policy=buffer)`` does the same job
    with a mixed data loader; this plugin is needed for latent features.

    Paper: T. L. Hayes, N. D. Cahill, C. Kanan, "Memory Efficient Experience Replay for
    Streaming Learning", ICRA 2019, https://arxiv.org/abs/1809.05922

    Scenarios: class-, task- and domain-incremental (task labels are replayed with the
    samples; a multi-head ``head`` gets them).

    Args:
        buffer: the ExStream buffer to fill and rehearse.
        batch_size_mem: buffer samples rehearsed per training step.
        head: dotted attribute path of the module that takes latent vectors (latent mode).
        replay_weight: $\\lambda$, weight of the rehearsal loss.
        seed: seed of the rehearsal sampler.

    Raises:
        ValueError: bad hyper-parameters; in latent mode, a model without ``head``
            (raised in ``before_training_exp``, before any update).

    Example:
        >>> model = build_network((1, 28, 28), 10)
        >>> for p in model.features.parameters():
        ...     p.requires_grad_(False)
        >>> buffer = ExStreamBuffer(200, per_class=20, feature_extractor=model.features)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=ce, train_mb_size=10,
        ...                  plugins=[ExStreamPlugin(buffer, batch_size_mem=32)])
    """

    def __init__(
        self,
        buffer: ExStreamBuffer,
        *,
        batch_size_mem: int = 32,
        head: str = "classifier",
        replay_weight: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        if not isinstance(buffer, ExStreamBuffer):
            raise ValueError(f"buffer must be an ExStreamBuffer, got {type(buffer).__name__}")
        if isinstance(batch_size_mem, bool) or not isinstance(batch_size_mem, int) or batch_size_mem < 1:
            raise ValueError(f"batch_size_mem must be an integer >= 1, got {batch_size_mem!r}")
        if not isinstance(head, str) or not head:
            raise ValueError("head must be the attribute path of the model's head, e.g. 'classifier'")
        if replay_weight < 0:
            raise ValueError(f"replay_weight must be >= 0, got {replay_weight}")
        self.buffer = buffer
        self.batch_size_mem = batch_size_mem
        self.head = head
        self.replay_weight = float(replay_weight)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._cache: Optional[tuple[int, tuple[torch.Tensor, ...]]] = None

    @property
    def storage_policy(self) -> ExStreamBuffer:
        """The buffer (the name Avalanche's ``ReplayPlugin`` uses)."""
        return self.buffer

    def head_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module that maps latent vectors to outputs."""
        module: Any = model
        for part in self.head.split("."):
            module = getattr(module, part, None)
            if module is None:
                raise ValueError(
                    f"ExStreamPlugin: the model has no module {self.head!r} to replay latent features into; "
                    f"pass head='<attribute path of the head>' or use a buffer without feature_extractor"
                )
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"ExStreamPlugin: model.{self.head} is not a torch.nn.Module")
        return module

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.buffer.latent:
            self.head_module(strategy.model)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        # the frozen feature extractor stays in eval mode while the rest of the model trains: its batch
        # norm statistics (a ResNet's) must not move, or the stored latents would stop matching new ones
        fe = self.buffer.feature_extractor
        if isinstance(fe, torch.nn.Module) and fe.training:
            fe.eval()

    def replay_batch(self) -> Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """A random mini-batch of the buffer, ``(x, y, task_labels)``, or None if empty."""
        n = len(self.buffer)
        if n == 0:
            return None
        version = self.buffer.version
        if self._cache is None or self._cache[0] != version:
            x, y, t, _ = self.buffer.tensors()
            self._cache = (version, (x, y, t))
        x, y, t = self._cache[1]
        idx = torch.randperm(n, generator=self.generator)[: self.batch_size_mem]
        return x[idx], y[idx], t[idx]

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if self.replay_weight == 0:
            return
        batch = self.replay_batch()
        if batch is None:
            return
        from avalanche.models import MultiTaskModule, avalanche_forward

        x, y, t = (b.to(strategy.device) for b in batch)
        module = self.head_module(strategy.model) if self.buffer.latent else strategy.model
        if isinstance(module, MultiTaskModule):
            out = avalanche_forward(module, x, t)
        else:
            out = module(x)
        strategy.loss += self.replay_weight * strategy._criterion(out, y)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.buffer.post_adapt(strategy, strategy.experience)

    def state_dict(self) -> dict[str, Any]:
        """The buffer's state and the sampler's RNG state."""
        return {"buffer": self.buffer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self._cache = None
