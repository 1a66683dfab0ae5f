"""Maximally Interfered Retrieval: replay the memory samples that a virtual update would hurt most."""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule, avalanche_forward
from avalanche.training.storage_policy import ClassBalancedBuffer, ExemplarsBuffer
from torch.func import functional_call
from torch.utils.data import default_collate

__all__ = ["MIRPlugin"]


class MIRPlugin(SupervisedPlugin):
    """Experience replay whose memory batch is the most interfered part of a random candidate set.

    Idea: before each update, take a virtual SGD step on the incoming mini-batch, draw
    ``subsample`` random candidates from the memory and replay the ``batch_size_mem`` of them
    whose loss that step raises most: the samples the update is about to forget. The memory is
    a class-balanced reservoir (Avalanche's ``ClassBalancedBuffer``), updated after each
    (online mini-)experience, so while an experience trains the memory holds what came before it.

    Maths: with incoming batch :math:`B`, learning rate :math:`\\alpha` and candidates
    :math:`C \\sim \\mathcal{M}`,
    :math:`\\theta^v = \\theta - \\alpha \\nabla_\\theta \\mathcal{L}(B; \\theta)`,
    :math:`s(x, y) = \\ell(f_{\\theta^v}(x), y) - \\ell(f_\\theta(x), y)` for :math:`(x, y) \\in C`,
    :math:`B_\\mathcal{M} = \\operatorname{top}_k s` with :math:`k` = ``batch_size_mem``, and the
    update minimises :math:`\\mathcal{L}(B; \\theta) + \\mathcal{L}(B_\\mathcal{M}; \\theta)`.
    :math:`\\ell` is the cross-entropy; the step size is the optimizer's first learning rate.

    Unlike Avalanche 0.6.0's ``MIRPlugin``, the candidates come from the whole memory. That
    plugin drops from its replay pool every class of the last mini-batch of the previous
    experience: with whole experiences it never replays the experience just learned (which is
    then forgotten), and with labels every experience reuses (task- and domain-incremental) its
    pool is empty. Scoring runs in eval mode (no dropout noise, no batch-norm statistics moved).

    Paper: R. Aljundi, L. Caccia, E. Belilovsky, M. Caccia, M. Lin, L. Charlin, T. Tuytelaars,
    "Online Continual Learning with Maximally Interfered Retrieval", NeurIPS 2019,
    https://arxiv.org/abs/1908.04742

    Scenarios: class-, task- and domain-incremental (memory samples keep their task labels),
    with whole experiences or in the streaming protocol.

    Example:
        >>> mir = MIRPlugin(mem_size=500, subsample=50, batch_size_mem=10)
        >>> strategy = Naive(model=model, optimizer=SGD(model.parameters(), lr=0.1), criterion=ce,
        ...                  train_mb_size=10, train_epochs=1, plugins=[mir])
        >>> for exp in online_train_stream(stream, 10):
        ...     strategy.train(exp)

    Args:
        mem_size: number of samples the memory holds.
        subsample: candidates drawn at random from the memory at each step.
        batch_size_mem: candidates replayed at each step (the most interfered ones);
            ``batch_size_mem == subsample`` is plain random replay.
        storage_policy: the memory; a ``ClassBalancedBuffer(mem_size, adaptive_size=True)`` when omitted.

    Raises:
        ValueError: a size is not a positive integer, ``batch_size_mem > subsample``, or
            ``storage_policy`` is not an ``ExemplarsBuffer`` of ``mem_size`` samples.
    """

    def __init__(self, mem_size: int = 200, subsample: int = 50, batch_size_mem: int = 10,
                 storage_policy: Optional[ExemplarsBuffer] = None):
        super().__init__()
        for name, value in (("mem_size", mem_size), ("subsample", subsample), ("batch_size_mem", batch_size_mem)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if batch_size_mem > subsample:
            raise ValueError(f"batch_size_mem ({batch_size_mem}) is chosen among subsample ({subsample}) candidates: "
                             f"pass subsample >= batch_size_mem")
        if storage_policy is None:
            storage_policy = ClassBalancedBuffer(max_size=mem_size, adaptive_size=True)
        if not isinstance(storage_policy, ExemplarsBuffer) or storage_policy.max_size != mem_size:
            raise ValueError(f"storage_policy must be an Avalanche ExemplarsBuffer with max_size={mem_size} "
                             f"(mem_size), got {storage_policy!r}")
        self.mem_size = mem_size
        self.subsample = subsample
        self.batch_size_mem = batch_size_mem
        self.storage_policy = storage_policy

    def candidates(self, device: Any = "cpu") -> Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``subsample`` random memory samples ``(x, y, task_label)``, or None while the memory is empty."""
        memory = self.storage_policy.buffer
        if len(memory) == 0:
            return None
        idx = torch.randperm(len(memory))[: self.subsample].tolist()
        batch = default_collate([memory[i] for i in idx])
        return batch[0].to(device), batch[1].to(device), batch[-1].to(device)

    def most_interfered(self, strategy: Any, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Indices of the ``batch_size_mem`` candidates whose loss the virtual step on ``strategy.loss`` raises most."""
        model = strategy.model
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(strategy.loss, [p for _, p in named], retain_graph=True, allow_unused=True)
        lr = strategy.optimizer.param_groups[0]["lr"]
        virtual = {n: (p - lr * g).detach() for (n, p), g in zip(named, grads) if g is not None}
        args = (x, t) if isinstance(model, MultiTaskModule) else (x,)
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                before = F.cross_entropy(avalanche_forward(model, x, t), y, reduction="none")
                after = F.cross_entropy(functional_call(model, virtual, args), y, reduction="none")
        finally:
            for m, mode in modes:
                m.training = mode
        return torch.topk(after - before, min(self.batch_size_mem, len(y))).indices

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        batch = self.candidates(strategy.device)
        if batch is None:
            return
        x, y, t = batch
        chosen = self.most_interfered(strategy, x, y, t)
        out = avalanche_forward(strategy.model, x[chosen], t[chosen])
        strategy.loss = strategy.loss + strategy._criterion(out, y[chosen])

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.storage_policy.post_adapt(strategy, strategy.experience)
