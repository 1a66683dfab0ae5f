"""A class- or experience-balanced memory of latent activations (the store of latent replay)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional.memory import tensors_bytes

BALANCE_MODES = ("class", "experience")


class LatentBuffer:
    """A balanced memory of latent activations, its size counted in samples.

    Samples are grouped by class or by experience; after every :meth:`add` each group
    holds ``max_size / n_groups`` samples (water-filling: a group with fewer samples
    than its share leaves the rest to the others), so group sizes differ by at most one
    unless a group ran out of samples. Which samples a group keeps is random.

    The latents are kept on the CPU (a memory may outgrow the accelerator's);
    :meth:`sample` returns CPU tensors, which the replaying plugin moves to the strategy's device.

    Args:
        max_size: capacity in samples (> 0).
        balance: ``"class"`` or ``"experience"``.
        seed: seed of the random selection.
    """

    def __init__(self, max_size: int, balance: str = "class", seed: int = 0):
        if max_size <= 0:
            raise ValueError(f"max_size must be > 0, got {max_size}")
        if balance not in BALANCE_MODES:
            raise ValueError(f"balance must be one of {BALANCE_MODES}, got {balance!r}")
        self.max_size = int(max_size)
        self.balance = balance
        self.generator = torch.Generator().manual_seed(seed)
        self.z = torch.empty(0)
        self.y = torch.empty(0, dtype=torch.long)
        self.exp = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.y.numel())

    @property
    def groups(self) -> Tensor:
        """Group id of every stored sample (its class or its experience)."""
        return self.y if self.balance == "class" else self.exp

    def group_sizes(self) -> dict[int, int]:
        """Number of stored samples per group."""
        ids, counts = torch.unique(self.groups, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    def class_counts(self) -> dict[int, int]:
        """Number of stored samples per class."""
        ids, counts = torch.unique(self.y, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    @staticmethod
    def quotas(available: dict[int, int], capacity: int) -> dict[int, int]:
        """Share ``capacity`` among groups as evenly as their ``available`` sizes allow."""
        quota = {g: 0 for g in available}
        left = capacity
        by_size = sorted((g for g, n in available.items() if n > 0), key=lambda g: (available[g], g))
        rest = []
        for i, g in enumerate(by_size):
            if available[g] <= left // (len(by_size) - i):
                quota[g] = available[g]  # a small group keeps everything; the others share the rest
                left -= available[g]
            else:
                rest = sorted(by_size[i:])
                break
        if rest:
            share, extra = divmod(left, len(rest))
            for j, g in enumerate(rest):
                quota[g] = share + (1 if j < extra else 0)
        return quota

    def add(self, z: Tensor, y: Tensor, experience: int) -> None:
        """Add the latents ``z`` (labels ``y``) of one experience and rebalance to ``max_size``."""
        z = z.detach().cpu()
        y = y.detach().cpu().long()
        if len(z) != len(y):
            raise ValueError(f"{len(z)} latents but {len(y)} labels")
        if len(z) == 0:
            return
        order = torch.randperm(len(z), generator=self.generator)
        z, y = z[order], y[order]
        e = torch.full_like(y, int(experience))
        self.z = z if len(self) == 0 else torch.cat([self.z, z.to(self.z.dtype)])
        self.y = torch.cat([self.y, y])
        self.exp = torch.cat([self.exp, e])
        groups = self.groups
        sizes = {int(g): int((groups == g).sum()) for g in torch.unique(groups)}
        quota = self.quotas(sizes, self.max_size)
        keep = torch.zeros(len(self), dtype=torch.bool)
        for g, q in quota.items():
            idx = (groups == g).nonzero().flatten()[:q]  # stored first: older samples win ties
            keep[idx] = True
        self.z, self.y, self.exp = self.z[keep], self.y[keep], self.exp[keep]

    def sample(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` random stored samples (without replacement when ``n <= len(self)``)."""
        if len(self) == 0:
            raise ValueError("the latent buffer is empty")
        if n <= len(self):
            idx = torch.randperm(len(self), generator=self.generator)[:n]
        else:
            idx = torch.randint(len(self), (n,), generator=self.generator)
        return self.z[idx], self.y[idx]

    def nbytes(self) -> int:
        """Bytes held by the stored latents and their labels."""
        return tensors_bytes((self.z, self.y, self.exp))

    def state_dict(self) -> dict[str, Any]:
        return {"max_size": self.max_size, "balance": self.balance, "z": self.z.clone(), "y": self.y.clone(),
                "exp": self.exp.clone(), "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_size = int(state["max_size"])
        self.balance = state["balance"]
        self.z, self.y, self.exp = state["z"].clone(), state["y"].clone(), state["exp"].clone()
        self.generator.set_state(state["rng"])


__all__ = ["BALANCE_MODES", "LatentBuffer"]
