"""A (conditional) variational autoencoder over latent-layer activations, trained continually.

:class:`LatentVAE` is the model, :func:`train_continually` one experience of its training
with generative self-replay, and :class:`LatentGenerator` the generator of latents that
generative latent replay keeps: a VAE built at the first experience, trained after each
one and sampled for the classes learned before.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional.memory import tensors_bytes


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


class LatentGenerator:
    """The generator of latents of generative latent replay: a :class:`LatentVAE` learned continually.

    The VAE is built at the first :meth:`learn`, when the size of a latent vector and the
    number of classes are known; every :meth:`learn` trains it on one experience's latents
    with :func:`train_continually` (self-replay of the classes it already knows), and
    :meth:`sample` draws latents of given classes for replay. An unconditional VAE draws
    latents of any known class, each labelled with one of the requested classes at random.

    Example:
        >>> gen = LatentGenerator(vae_hidden=64, code_dim=8, vae_epochs=2)
        >>> gen.learn(torch.rand(100, 16), torch.randint(2, (100,)), n_classes=10, step=0)  # doctest: +SKIP
        >>> z, y = gen.sample(32, classes=[0, 1])                                        # doctest: +SKIP

    Args:
        conditional: class-conditional VAE.
        vae_hidden: hidden width of the VAE.
        code_dim: size of the VAE's code.
        beta: weight of the VAE's KL term (>= 0).
        vae_epochs: epochs of VAE training per :meth:`learn`.
        vae_lr: Adam learning rate of the VAE (> 0).
        vae_batch_size: minibatch size of VAE training.
        replay_per_class: samples per known class the VAE generates for its own training.
        seed: seed of the VAE's training (``seed + step``) and of :meth:`sample`.

    Raises:
        ValueError: a size or epoch count below 1, ``vae_lr <= 0`` or ``beta < 0``.
    """

    def __init__(self, *, conditional: bool = True, vae_hidden: int = 256, code_dim: int = 32, beta: float = 1.0,
                 vae_epochs: int = 10, vae_lr: float = 1e-3, vae_batch_size: int = 128, replay_per_class: int = 1000,
                 seed: int = 0):
        check_sizes(vae_hidden=vae_hidden, code_dim=code_dim, vae_epochs=vae_epochs,
                    vae_batch_size=vae_batch_size, replay_per_class=replay_per_class)
        if vae_lr <= 0 or beta < 0:
            raise ValueError(f"vae_lr must be > 0 and beta >= 0, got {vae_lr}, {beta}")
        self.conditional = bool(conditional)
        self.vae_kwargs = dict(hidden=vae_hidden, code_dim=code_dim, beta=beta)
        self.vae_epochs, self.vae_lr, self.vae_batch_size = int(vae_epochs), float(vae_lr), int(vae_batch_size)
        self.replay_per_class = int(replay_per_class)
        self.seed = int(seed)
        self.vae: Optional[LatentVAE] = None
        #: classes learned so far.
        self.known_classes: list[int] = []
        self.sample_rng = torch.Generator().manual_seed(seed)
        #: the mean loss of every epoch, one list per :meth:`learn`.
        self.losses: list[list[float]] = []

    def blueprint(self, latent_dim: int, n_classes: int, nonnegative: bool = True) -> LatentVAE:
        """A new, untrained VAE of the configured size (building it draws from torch's global generator)."""
        n_classes = n_classes if self.conditional else None
        return LatentVAE(latent_dim, n_classes, nonnegative=nonnegative, **self.vae_kwargs)

    def build(self, latent_dim: int, n_classes: int, nonnegative: bool = True) -> LatentVAE:
        """Create the VAE (done by the first :meth:`learn`, when the sizes are known)."""
        self.vae = self.blueprint(latent_dim, n_classes, nonnegative)
        return self.vae

    def learn(self, z: Tensor, y: Tensor, *, n_classes: Optional[int], step: int,
              device: Optional[torch.device] = None) -> list[float]:
        """Train on the latents ``z`` (classes ``y``) of one experience; returns the epochs' mean losses.

        Args:
            z: latents of the experience.
            y: their classes.
            n_classes: classes the model can output (the VAE's condition); ``None``: ``max(y) + 1``.
            step: index of the experience (the training seed is ``seed + step``).
            device: where the VAE is built, or moved to, and trained (``None``: where it is).
        """
        z = z.flatten(1)
        if self.vae is None:
            self.build(z.shape[1], n_classes or int(y.max()) + 1, nonnegative=bool((z >= 0).all()))
        self.to(device)
        losses = train_continually(self.vae, z, y, epochs=self.vae_epochs, batch_size=self.vae_batch_size,
                                   lr=self.vae_lr, replay_per_class=self.replay_per_class, seed=self.seed + step)
        self.losses.append(losses)
        self.known_classes = sorted(set(self.known_classes) | set(int(c) for c in torch.unique(y)))
        return losses

    def to(self, device: Optional[torch.device | str]) -> "LatentGenerator":
        """Move the VAE to ``device`` (nothing to move before it is built, or with ``device=None``)."""
        if self.vae is not None and device is not None:
            self.vae.to(device)
        return self

    def sample(self, n: int, classes: Sequence[int]) -> tuple[Tensor, Tensor]:
        """``n`` generated latents of the given (known) ``classes`` and their labels, on the VAE's device.

        Raises:
            ValueError: nothing learned yet, or no class given.
        """
        if self.vae is None or not classes:
            raise ValueError("sample needs a generator that has learned something and at least one class")
        if self.conditional:
            z, y = self.vae.sample(n, classes=classes, generator=self.sample_rng)
        else:
            z, _ = self.vae.sample(n, generator=self.sample_rng)
            pick = torch.randint(len(classes), (n,), generator=self.sample_rng)
            # any class of the pool: for negative replay only "not a current class" matters
            y = torch.as_tensor(list(classes), dtype=torch.long)[pick].to(z.device)
        return z, y

    def nbytes(self) -> int:
        """Bytes of the VAE's parameters (0 before it is built)."""
        return 0 if self.vae is None else tensors_bytes(self.vae.parameters())

    def state_dict(self) -> dict[str, Any]:
        vae = self.vae
        return {
            "vae": None if vae is None else {k: v.clone() for k, v in vae.state_dict().items()},
            "vae_shape": None if vae is None else (vae.input_dim, vae.n_classes, vae.nonnegative),
            "known_classes": list(self.known_classes),
            "sample_rng": self.sample_rng.get_state(),
            "losses": [list(epochs) for epochs in self.losses],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.known_classes = list(state["known_classes"])
        self.sample_rng.set_state(state["sample_rng"])
        self.losses = [list(epochs) for epochs in state.get("losses", [])]
        if state["vae"] is None:
            self.vae = None
            return
        dim, n_classes, nonneg = state["vae_shape"]
        # rebuilt where the saved weights are (the CPU for a checkpoint); the plugin moves it to the
        # strategy's device before its next use (see GenerativeLatentReplayPlugin.before_training_exp)
        device = state["vae"]["scale"].device
        self.vae = LatentVAE(dim, n_classes, nonnegative=nonneg, **self.vae_kwargs).to(device)
        self.vae.load_state_dict(state["vae"])
        self.vae.eval()


__all__ = ["LatentGenerator", "LatentVAE", "check_sizes", "train_continually"]
