"""What every network of Hard Attention to the Task (HAT) shares: per-task embeddings, heads and norms.

Serrà, Surís, Miron, Karatzoglou, *Overcoming catastrophic forgetting with hard attention
to the task*, ICML 2018, `arXiv:1801.01423 <https://arxiv.org/abs/1801.01423>`_.

:class:`HATModule` gives each task its gate embeddings, its head and, where the network
asks for them, its own batch norms; it computes the gates, and derives from which gated
units each shared weight connects the masks :class:`~avalanche_ext.plugins.hat.HATPlugin`
applies to the gradients. The networks themselves (a gated stack, the gated reduced
ResNet-18) are in :mod:`avalanche_ext.models.hat`.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch
from torch import nn

from avalanche.models import MultiTaskModule

from ...functional.hat import weight_mask

#: Gates with $s\, e$ below minus this value are exactly 0 (:attr:`HATModule.gate_cutoff`).
GATE_CUTOFF = 50.0


class HATModule(MultiTaskModule):
    """What every HAT network shares: task embeddings, per-task heads (and norms), gates and masks.

    A subclass declares its gated units (:attr:`units`, one entry per gated layer), which
    shared parameter connects which gated units (:meth:`connections`), and how an input
    flows through the gated layers (:meth:`features`). This class gives each task its
    embeddings $e^l_t$, its head, and, where the subclass names batch-norm sites in
    ``norm_channels``, its own ``BatchNorm2d`` per site; and it derives from the connections
    the parameter masks :class:`~avalanche_ext.plugins.hat.HATPlugin` applies.

    Args:
        units: units (channels for a convolution) of each gated layer, in order.
        n_outputs: units of each task's head.
        head_in: size of the representation the heads read.
        s_max: the largest gate scale, used at the end of each epoch and in evaluation
            (paper: 400).
        norm_channels: channels of each per-task batch-norm site (none by default).

    Attributes:
        s: the current gate scale in training mode (set by the plugin); evaluation
            uses ``s_max``.
        last_gates: ``{task: [a^1_t, ..., a^L_t]}`` of the last training forward pass,
            with gradient, for the attention regularizer.
        gate_cutoff: a gate with $s\\, e < -$``gate_cutoff`` is exactly 0 instead of
            $\\sigma(s\\, e) < 2 \\cdot 10^{-22}$ (default :data:`GATE_CUTOFF`; ``math.inf``
            keeps every sigmoid). Such tiny gates change no output, and the annealing
            compensation of :class:`~avalanche_ext.plugins.hat.HATPlugin` stops restoring
            their gradient at the same point (its ``thres_cosh``, 50); but their products
            underflow into denormal floats, which make a CPU's convolutions several times slower.
    """

    def __init__(
        self,
        units: Sequence[int],
        n_outputs: int,
        head_in: int,
        *,
        s_max: float = 400.0,
        norm_channels: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, got {n_outputs}")
        if s_max <= 1:
            raise ValueError(f"s_max must be > 1, got {s_max}")
        self.units: list[int] = [int(u) for u in units]
        self.n_outputs = int(n_outputs)
        self.head_in = int(head_in)
        self.norm_channels: list[int] = [int(c) for c in norm_channels]
        self.s_max = float(s_max)
        self.s = float(s_max)
        self.gate_cutoff = GATE_CUTOFF
        self.embeddings = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        self.max_class_label = self.n_outputs
        self.last_gates: dict[int, list[torch.Tensor]] = {}
        self.register_load_state_dict_pre_hook(_create_tasks_before_load)

    # ---- what a subclass defines ---------------------------------------------------------
    def connections(self) -> list[tuple[str, nn.Parameter, int, Optional[int]]]:
        """``(name, parameter, post, pre)`` for every shared parameter HAT protects.

        ``post`` is the index of the gated layer whose units the parameter feeds, ``pre``
        that of the gated layer it reads from (``None`` when it reads the input, or for a
        bias).
        """
        raise NotImplementedError

    def features(self, x: torch.Tensor, gates: Sequence[torch.Tensor], norms: Optional[nn.ModuleList]) -> torch.Tensor:
        """The gated representation ``(N, head_in)`` of ``x``, with ``task``'s gates and norms."""
        raise NotImplementedError

    # ---- tasks -------------------------------------------------------------------------
    @property
    def tasks(self) -> list[int]:
        """Task labels that have an embedding and a head."""
        return sorted(int(t) for t in self.embeddings)

    def add_task(self, task: int) -> None:
        """Create the embeddings (N(0, 1), as the paper), head and norms of ``task`` if missing."""
        key = str(int(task))
        if key in self.embeddings:
            return
        device = next(p for _, p, _, _ in self.connections()).device
        self.embeddings[key] = nn.ParameterList([nn.Parameter(torch.randn(u, device=device)) for u in self.units])
        self.heads[key] = nn.Linear(self.head_in, self.n_outputs).to(device)
        if self.norm_channels:
            self.norms[key] = nn.ModuleList([nn.BatchNorm2d(c) for c in self.norm_channels]).to(device)

    def adaptation(self, experience: Any) -> None:
        """Add the embeddings and head of every task label of ``experience``."""
        super().adaptation(experience)
        for t in set(int(t) for t in experience.task_labels):
            self.add_task(t)

    def task_embeddings(self, task: int) -> list[nn.Parameter]:
        """The embeddings $e^l_t$ of ``task``, one per gated layer."""
        key = str(int(task))
        if key not in self.embeddings:
            raise KeyError(f"task {task} has no embedding yet; known tasks: {self.tasks}")
        return list(self.embeddings[key])

    def gates(self, task: int, s: Optional[float] = None) -> list[torch.Tensor]:
        """$a^l_t = \\sigma(s\\, e^l_t)$ for every gated layer (``s`` defaults to ``s_max``).

        A gate whose pre-activation $s\\, e$ is below ``-gate_cutoff`` is exactly 0 (see
        :attr:`gate_cutoff`).
        """
        s = self.s_max if s is None else s
        out = []
        for e in self.task_embeddings(task):
            x = s * e
            out.append(torch.sigmoid(x) * (x > -self.gate_cutoff))
        return out

    # ---- forward -----------------------------------------------------------------------
    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        task = int(task_label)
        gates = self.gates(task, self.s if self.training else self.s_max)
        if self.training:
            self.last_gates[task] = gates
        norms = self.norms[str(task)] if self.norm_channels else None
        return self.heads[str(task)](self.features(x, gates, norms))

    # ---- what the gates protect --------------------------------------------------------
    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The shared weights and biases whose gradients HAT masks, by name."""
        return {name: p for name, p, _, _ in self.connections()}

    def parameter_masks(self, gates: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """For each shared parameter, $\\min(a^l_i, a^{l-1}_j)$ of the units it connects.

        A linear layer that reads a flattened convolution (channel-major) repeats each
        channel's gate over its spatial positions.

        Args:
            gates: one attention vector per gated layer (e.g. the cumulative attention).

        Returns:
            ``{name: mask}`` with the shape of each parameter of :meth:`protected_parameters`.
        """
        if len(gates) != len(self.units):
            raise ValueError(f"expected {len(self.units)} gate vectors, got {len(gates)}")
        masks: dict[str, torch.Tensor] = {}
        for name, p, post, pre in self.connections():
            a_pre = None if pre is None or p.dim() == 1 else gates[pre].detach()
            if a_pre is not None and p.dim() == 2 and p.shape[1] != a_pre.numel():
                a_pre = a_pre.repeat_interleave(p.shape[1] // a_pre.numel())
            masks[name] = weight_mask(gates[post].detach(), a_pre, p.shape)
        return masks

    # ---- per-task batch norm -------------------------------------------------------------
    @torch.no_grad()
    def recalibrate_norms(self, task: int, inputs: Iterable[torch.Tensor]) -> int:
        """Set ``task``'s batch-norm statistics to those of ``inputs`` at the gates of evaluation.

        During training the gates are annealed within every epoch, so the running statistics
        mix activations of soft gates (early batches) with those of the near-binary gates of
        evaluation; on an epoch of few batches they no longer describe what evaluation sees.
        This pass forwards ``inputs`` at ``s_max`` in training mode without gradient and
        keeps the plain average of the batches' statistics. Affine parameters, weights and
        other tasks' norms are untouched.

        Args:
            task: a task with norms.
            inputs: batches of inputs, on the network's device.

        Returns:
            the number of batches seen (0 leaves the statistics as they were).
        """
        if not self.norm_channels:
            return 0
        norms = self.norms[str(int(task))]
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
                 for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        was_training, s = self.training, self.s
        self.train()
        self.s = self.s_max
        n = 0
        try:
            for x in inputs:
                self.forward_single_task(x, task)
                n += 1
        finally:
            self.train(was_training)
            self.s = s
            self.last_gates.pop(int(task), None)
            for m, (mean, var, count, momentum) in zip(norms, saved):
                m.momentum = momentum
                if n == 0:
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
                    m.num_batches_tracked.copy_(count)
        return n

    # ---- memory ------------------------------------------------------------------------
    def memory_report(self) -> dict[str, int]:
        """What the network stores, in bytes (float32).

        Every task adds its embeddings (one value per unit), its head and, where the
        network has per-task norms, their affine parameters and running statistics; the
        shared gated layers are stored once. ``attention_bytes`` is the cumulative attention
        :class:`~avalanche_ext.plugins.HATPlugin` keeps (one value per unit).
        """
        size = torch.finfo(torch.float32).bits // 8
        emb = sum(self.units) * size
        head = (self.head_in * self.n_outputs + self.n_outputs) * size
        norm = 4 * sum(self.norm_channels) * size  # weight, bias, running mean and variance
        report = {
            "bytes_per_task": emb + head + norm,
            "embedding_bytes_per_task": emb,
            "head_bytes_per_task": head,
            "shared_bytes": sum(p.numel() for _, p, _, _ in self.connections()) * size,
            "attention_bytes": emb,
        }
        if norm:
            report["norm_bytes_per_task"] = norm
        return report


def _create_tasks_before_load(module: HATModule, state_dict: dict, prefix: str, *args: Any) -> None:
    """Create the tasks a state dict holds, so a fresh network can load it."""
    for key in state_dict:
        if key.startswith(prefix + "embeddings."):
            module.add_task(int(key[len(prefix) + len("embeddings."):].split(".")[0]))


__all__ = ["GATE_CUTOFF", "HATModule"]
