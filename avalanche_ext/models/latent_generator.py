"""The generator of latents that generative latent replay keeps.

A :class:`~avalanche_ext.models.latent_vae.LatentVAE` built at the first experience, trained
after each one with generative self-replay and sampled for the classes learned before.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from ..functional.memory import tensors_bytes
from .latent_vae import LatentVAE, check_sizes, train_continually


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


__all__ = ["LatentGenerator"]
