"""A (conditional) variational autoencoder over latent-layer activations, trained continually.

:class:`LatentVAE` is the model and :func:`train_continually` one experience of its training
with generative self-replay; :class:`~avalanche_ext.models.latent_generator.LatentGenerator`
keeps one for generative latent replay.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn



def check_sizes(**sizes: int) -> None:
    """Raise a ``ValueError`` naming the first argument that is below 1."""
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


class LatentVAE(nn.Module):
    """VAE on flat latent vectors, optionally conditioned on the class.

    Encoder ``q(u | z, c)`` and decoder ``p(z | u, c)`` are MLPs; ``c`` is a one-hot
    class vector concatenated to their inputs when ``n_classes`` is given. The loss
    of a batch is the Gaussian negative log-likelihood (squared error) plus ``beta``
    times the KL divergence to the standard normal prior, per sample:

    $$\\mathcal{L} = \\lVert z - \\hat z \\rVert^2 + \\beta\\,
    \\mathrm{KL}\\big(\\mathcal{N}(\\mu, \\sigma^2) \\,\\Vert\\, \\mathcal{N}(0, I)\\big).$$

    Latents of ReLU layers are non-negative: with ``nonnegative=True`` the decoder
    output goes through a ReLU so generated vectors live in the same orthant.

    Example:
        >>> vae = LatentVAE(400, n_classes=10)
        >>> z, y = vae.sample(8, classes=[0, 3])
        >>> z.shape, y.shape
        (torch.Size([8, 400]), torch.Size([8]))

    Args:
        input_dim: size of a latent vector (> 0).
        n_classes: number of classes to condition on; ``None`` for an unconditional VAE.
        hidden: width of the hidden layer of encoder and decoder (> 0).
        code_dim: size of the VAE's own code ``u`` (> 0).
        beta: weight of the KL term (>= 0).
        nonnegative: clamp generated vectors at zero.
    """

    def __init__(
        self,
        input_dim: int,
        n_classes: Optional[int] = None,
        *,
        hidden: int = 256,
        code_dim: int = 32,
        beta: float = 1.0,
        nonnegative: bool = True,
    ):
        super().__init__()
        check_sizes(input_dim=input_dim, hidden=hidden, code_dim=code_dim)
        if n_classes is not None and n_classes <= 0:
            raise ValueError(f"n_classes must be > 0 or None, got {n_classes}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.input_dim = int(input_dim)
        self.n_classes = n_classes
        self.code_dim = int(code_dim)
        self.beta = float(beta)
        self.nonnegative = bool(nonnegative)
        c = n_classes or 0
        self.encoder = nn.Sequential(nn.Linear(input_dim + c, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, code_dim)
        self.to_logvar = nn.Linear(hidden, code_dim)
        self.decoder = nn.Sequential(
            nn.Linear(code_dim + c, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, input_dim)
        )
        #: classes the VAE has been trained on so far (what :meth:`sample` draws from).
        self.register_buffer("seen", torch.zeros(max(c, 1), dtype=torch.bool))
        #: scale used to normalise inputs (the std of the first data seen, the same in every dimension).
        self.register_buffer("scale", torch.ones(input_dim))

    @property
    def conditional(self) -> bool:
        return self.n_classes is not None

    @property
    def seen_classes(self) -> list[int]:
        return self.seen.nonzero().flatten().tolist() if self.conditional else []

    def _cond(self, h: Tensor, y: Optional[Tensor]) -> Tensor:
        if not self.conditional:
            return h
        if y is None:
            raise ValueError("a conditional LatentVAE needs the class labels")
        return torch.cat([h, F.one_hot(y.long(), self.n_classes).to(h.dtype)], dim=1)

    def encode(self, z: Tensor, y: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(self._cond(z.flatten(1) / self.scale, y))
        return self.to_mu(h), self.to_logvar(h).clamp(-10, 10)

    def decode(self, u: Tensor, y: Optional[Tensor] = None) -> Tensor:
        out = self.decoder(self._cond(u, y)) * self.scale
        return F.relu(out) if self.nonnegative else out

    def forward(self, z: Tensor, y: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(z, y)
        u = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(u, y), mu, logvar

    def loss(self, z: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Mean over the batch of the (scale-normalised) reconstruction error plus ``beta`` KL."""
        recon, mu, logvar = self(z, y)
        rec = (((recon - z.flatten(1)) / self.scale) ** 2).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return (rec + self.beta * kl).mean()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        classes: Optional[Sequence[int]] = None,
        *,
        labels: Optional[Tensor] = None,
        generator: Optional[torch.Generator] = None,
        temperature: float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Draw ``n`` latent vectors.

        Args:
            n: how many.
            classes: classes to draw from uniformly (conditional VAE); default: all seen.
            labels: explicit label of every sample (overrides ``classes``).
            generator: random generator for reproducible draws.
            temperature: spread of the code relative to the prior (``u ~ N(0, t^2 I)``);
                0 decodes the prior's mean, above 1 reaches further from each class's centre.

        Returns:
            ``(z, y)``: the vectors and their classes (``-1`` for an unconditional VAE).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        dev = self.scale.device
        if self.conditional:
            if labels is None:
                pool = list(classes) if classes is not None else self.seen_classes
                if not pool:
                    raise ValueError("the VAE has not been trained on any class yet")
                pick = torch.randint(len(pool), (n,), generator=generator)
                labels = torch.as_tensor(pool, dtype=torch.long)[pick]
            y = labels.to(dev).long()
        else:
            y = torch.full((n,), -1, dtype=torch.long, device=dev)
        u = temperature * torch.randn(n, self.code_dim, generator=generator).to(dev)
        return self.decode(u, y if self.conditional else None), y


def train_continually(
    vae: LatentVAE,
    z: Tensor,
    y: Optional[Tensor],
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    replay_per_class: int = 1000,
    seed: int = 0,
) -> list[float]:
    """Train ``vae`` on new latents ``z`` (classes ``y``) without forgetting what it generates.

    Generative self-replay (Shin et al. 2017): a frozen copy of the VAE as it was
    before this call generates ``replay_per_class`` samples of every class it already
    knows (an unconditional VAE: as many samples as there are new ones), and the VAE
    is trained on the union for ``epochs`` epochs. The first call also fits the input
    scale.

    Returns:
        The mean loss of every epoch.
    """
    if epochs < 0 or batch_size <= 0 or lr <= 0 or replay_per_class <= 0:
        raise ValueError("epochs must be >= 0; batch_size, lr and replay_per_class > 0")
    z = z.detach().flatten(1).float()
    dev = vae.scale.device
    g = torch.Generator().manual_seed(seed)
    if vae.conditional:
        if y is None:
            raise ValueError("a conditional LatentVAE needs the class labels")
        y = y.detach().long().cpu()
        old = [c for c in vae.seen_classes if c not in set(y.tolist())]
    else:
        y = None
        old = []
    first = not bool(vae.seen.any())
    if first:
        with torch.no_grad():
            # one scale for all dimensions: a dimension silent in the first classes may not be later
            vae.scale.fill_(float(z.std().clamp_min(1e-3)) if z.numel() > 1 else 1.0)
    xs, ys = [z.cpu()], [y] if y is not None else []
    if not first and (old or not vae.conditional):
        frozen = copy.deepcopy(vae).eval()
        if vae.conditional:
            labels_old = torch.as_tensor(old, dtype=torch.long).repeat_interleave(replay_per_class)
            zo, yo = frozen.sample(len(labels_old), labels=labels_old, generator=g)
        else:
            zo, yo = frozen.sample(len(z), generator=g)
        xs.append(zo.cpu())
        if vae.conditional:
            ys.append(yo.cpu())
    data = torch.cat(xs)
    labels = torch.cat(ys) if ys else None
    opt = torch.optim.Adam(vae.parameters(), lr=lr, foreach=True)
    losses = []
    vae.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=g)
        total, count = 0.0, 0
        for i in range(0, len(data), batch_size):
            idx = order[i : i + batch_size]
            loss = vae.loss(data[idx].to(dev), None if labels is None else labels[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
    vae.eval()
    with torch.no_grad():
        if vae.conditional:
            vae.seen[torch.unique(y)] = True
        else:
            vae.seen[0] = True
    return losses


__all__ = ["LatentVAE", "check_sizes", "train_continually"]
