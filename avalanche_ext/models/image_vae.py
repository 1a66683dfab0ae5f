"""A fully connected variational autoencoder over images in [0, 1], the generator of deep generative replay."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..functional.generative_replay import bernoulli_vae_loss


class ImageVAE(nn.Module):
    """VAE with MLP encoder and decoder and a Bernoulli likelihood, for inputs in ``[0, 1]``.

    The encoder maps a flattened image through ``hidden`` ReLU layers to the mean and
    log-variance of a diagonal Gaussian over a ``latent_dim`` code; the decoder mirrors it
    and ends in one logit per pixel. :meth:`loss` is the negative ELBO per sample
    (binary cross-entropy summed over pixels plus the KL divergence to the standard normal
    prior); :meth:`sample` decodes codes drawn from the prior.

    The default 400-400 layers with a 100-d code are van de Ven et al.'s generator for
    split MNIST ("Brain-inspired replay", Nat. Commun. 2020).

    Example:
        >>> vae = ImageVAE((1, 28, 28))
        >>> vae.loss(torch.rand(8, 1, 28, 28)).backward()
        >>> vae.sample(4).shape
        torch.Size([4, 1, 28, 28])

    Args:
        input_shape: shape of one input, e.g. ``(1, 28, 28)``.
        hidden: widths of the encoder's hidden layers (the decoder uses them reversed).
        latent_dim: size of the code.

    Raises:
        ValueError: a non-positive size.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (400, 400), latent_dim: int = 100):
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be positive sizes such as (1, 28, 28), got {tuple(input_shape)}")
        widths = [int(h) for h in hidden]
        if not widths or any(h < 1 for h in widths):
            raise ValueError(f"hidden must be one or more positive widths such as (400, 400), got {list(hidden)}")
        if int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.input_shape = shape
        self.latent_dim = int(latent_dim)
        size = math.prod(shape)
        self.encoder = _mlp([size, *widths])
        self.to_mu = nn.Linear(widths[-1], self.latent_dim)
        self.to_logvar = nn.Linear(widths[-1], self.latent_dim)
        self.decoder = nn.Sequential(_mlp([self.latent_dim, *reversed(widths)]), nn.Linear(widths[0], size))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the code of ``x``."""
        h = self.encoder(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: Tensor) -> Tensor:
        """Pixel logits of codes ``z``, shaped like the inputs."""
        return self.decoder(z).view(-1, *self.input_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(reconstruction logits, mu, logvar)`` with a reparameterised code."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar

    def loss(self, x: Tensor) -> Tensor:
        """Negative ELBO per sample, averaged over the batch.

        Raises:
            ValueError: ``x`` has values outside ``[0, 1]`` (the Bernoulli likelihood needs them inside).
        """
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(
                f"ImageVAE models inputs in [0, 1], got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]; "
                "pass unnormalised images scaled to [0, 1]"
            )
        recon, mu, logvar = self(x)
        return bernoulli_vae_loss(recon, x, mu, logvar)

    @torch.no_grad()
    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Decode ``n`` codes drawn from the prior: images in ``[0, 1]``, shaped ``(n, *input_shape)``."""
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        device = self.to_mu.weight.device
        z = torch.randn(int(n), self.latent_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode_logits(z))


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


__all__ = ["ImageVAE"]
