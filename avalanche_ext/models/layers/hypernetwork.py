"""A chunked hypernetwork: all the weights of a target network, generated from a task embedding.

Paper: J. von Oswald, C. Henning, B. F. Grewe, J. Sacramento, *Continual learning with
hypernetworks*, ICLR 2020, https://arxiv.org/abs/1906.00695.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {"relu": F.relu, "elu": F.elu, "tanh": torch.tanh, "gelu": F.gelu, "leaky_relu": F.leaky_relu}


class ChunkedHyperNetwork(nn.Module):
    """Generate ``n_outputs`` weights from a task embedding, one chunk at a time.

    .. math::
        h(e_t, \\Theta) = \\big[f_\\Theta([e_t, c_1]), \\dots, f_\\Theta([e_t, c_{n}])\\big]_{1:N}

    with :math:`f_\\Theta` an MLP ending in ``chunk_size`` linear units, :math:`c_i` learned
    chunk embeddings (shared by all tasks) and :math:`n = \\lceil N / \\text{chunk\\_size}\\rceil`.
    The task embeddings :math:`e_t` are added with :meth:`add_task`.

    Args:
        n_outputs: number of weights to generate (the target's size).
        embedding_dim: size of a task embedding :math:`e_t`.
        chunk_size: outputs per chunk.
        chunk_embedding_dim: size of a chunk embedding :math:`c_i`.
        hidden: widths of the MLP's hidden layers.
        activation: ``relu``, ``elu``, ``tanh``, ``gelu`` or ``leaky_relu``.
        embedding_std: standard deviation of the initial task and chunk embeddings.

    Raises:
        ValueError: for non-positive sizes or an unknown activation.
    """

    def __init__(
        self,
        n_outputs: int,
        *,
        embedding_dim: int = 96,
        chunk_size: int = 42000,
        chunk_embedding_dim: int = 96,
        hidden: Sequence[int] = (10, 10),
        activation: str = "relu",
        embedding_std: float = 1.0,
    ):
        super().__init__()
        for key, value in (("n_outputs", n_outputs), ("embedding_dim", embedding_dim), ("chunk_size", chunk_size),
                           ("chunk_embedding_dim", chunk_embedding_dim)):
            if int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {list(hidden)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if embedding_std <= 0:
            raise ValueError(f"embedding_std must be > 0, got {embedding_std}")
        self.n_outputs = int(n_outputs)
        self.embedding_dim = int(embedding_dim)
        self.chunk_size = int(min(chunk_size, n_outputs))
        self.n_chunks = math.ceil(self.n_outputs / self.chunk_size)
        self.activation = activation
        self.embedding_std = float(embedding_std)
        self.task_embeddings = nn.ParameterDict()
        self.chunk_embeddings = nn.Parameter(torch.randn(self.n_chunks, int(chunk_embedding_dim)) * embedding_std)
        sizes = [self.embedding_dim + int(chunk_embedding_dim), *map(int, hidden), self.chunk_size]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ----- tasks ---------------------------------------------------------------------
    @property
    def tasks(self) -> list[int]:
        """The tasks that have an embedding, in the order they were added."""
        return [int(k) for k in self.task_embeddings.keys()]

    def add_task(self, task: int) -> nn.Parameter:
        """Add a randomly initialised embedding for ``task`` (returns the existing one if any)."""
        key = str(int(task))
        if key not in self.task_embeddings:
            ref = self.chunk_embeddings
            self.task_embeddings[key] = nn.Parameter(
                torch.randn(self.embedding_dim, device=ref.device, dtype=ref.dtype) * self.embedding_std
            )
        return self.task_embeddings[key]

    def embedding(self, task: int) -> nn.Parameter:
        try:
            return self.task_embeddings[str(int(task))]
        except KeyError:
            raise KeyError(f"no embedding for task {task}; known tasks: {self.tasks}") from None

    def freeze_embeddings(self, except_task: Optional[int] = None) -> None:
        """Stop training every task embedding but ``except_task``'s."""
        for key, emb in self.task_embeddings.items():
            emb.requires_grad_(except_task is not None and key == str(int(except_task)))

    # ----- generation ----------------------------------------------------------------
    def theta(self) -> dict[str, nn.Parameter]:
        """The parameters shared by all tasks (generator MLP and chunk embeddings)."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("task_embeddings.")}

    @property
    def num_theta(self) -> int:
        """Number of shared scalar parameters (what the compression ratio counts)."""
        return sum(p.numel() for p in self.theta().values())

    @property
    def embedding_bytes(self) -> int:
        """Bytes of one task embedding."""
        return self.embedding_dim * self.chunk_embeddings.element_size()

    def generate(self, embeddings: torch.Tensor, theta: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """Weights for one embedding ``(D,)`` or a batch ``(B, D)``: ``(N,)`` or ``(B, N)``.

        ``theta`` replaces the shared parameters (e.g. :math:`\\Theta + \\Delta\\Theta` for the
        one-step lookahead); by default the module's own are used.
        """
        th = self.theta() if theta is None else theta
        single = embeddings.dim() == 1
        emb = embeddings.unsqueeze(0) if single else embeddings
        chunks = th["chunk_embeddings"]
        b = emb.shape[0]
        inputs = torch.cat(
            [emb.unsqueeze(1).expand(b, self.n_chunks, emb.shape[1]), chunks.unsqueeze(0).expand(b, *chunks.shape)],
            dim=2,
        ).reshape(b * self.n_chunks, -1)
        act = _ACTIVATIONS[self.activation]
        h = inputs
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            h = F.linear(h, th[f"layers.{i}.weight"], th[f"layers.{i}.bias"])
            if i < last:
                h = act(h)
        out = h.reshape(b, self.n_chunks * self.chunk_size)[:, : self.n_outputs]
        return out[0] if single else out

    def forward(self, task: int) -> torch.Tensor:
        """The flat weight vector of ``task``: :math:`h(e_t, \\Theta)`."""
        return self.generate(self.embedding(task))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        head = prefix + "task_embeddings."
        for key in state_dict:
            if key.startswith(head):
                self.add_task(int(key[len(head):]))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


__all__ = ["ChunkedHyperNetwork"]
