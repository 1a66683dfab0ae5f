"""Generative latent replay and Generative Negative Replay (GNR): replay latents a VAE generates."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch
from torch import Tensor, nn

from ..functional.memory import latent_memory_bytes, replay_memory_figures, tensors_bytes
from ..functional.negative_replay import restrict_gradient
from ..models.latent_split import output_size
from ..models.latent_generator import LatentGenerator
from ..models.latent_vae import LatentVAE
from ..protocols import Number
from .latent_replay import LatentReplayBase, first_samples


def experience_classes(experience: Any) -> list[int]:
    """Classes present in the training data of ``experience``."""
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = torch.unique(torch.as_tensor(list(experience.dataset.targets))).tolist()
    return sorted(int(c) for c in classes)


def _size(vae: nn.Module) -> tuple[int, int]:
    """Parameters and bytes of ``vae``."""
    params = list(vae.parameters())
    return sum(p.numel() for p in params), tensors_bytes(params)


class GenerativeLatentReplayPlugin(LatentReplayBase):
    """Generative (Negative) Replay of latent activations (Graffieti et al., Neural Networks 2023).

    Idea: as in :class:`~avalanche_ext.plugins.LatentReplayPlugin` the model is cut at
    ``latent_layer`` and the layers below are frozen after the first experience(s), but no
    activation is stored: a :class:`~avalanche_ext.models.latent_generator.LatentGenerator` (a
    :class:`~avalanche_ext.models.latent_vae.LatentVAE`) is trained continually on the
    latents of every experience (with self-replay of the classes it already knows) and
    each minibatch is extended with ``R`` latents it generates for the old classes.

    With ``negative=True`` (GNR) the generated samples are *negatives only*: their loss
    reaches only the output units of the current experience's classes $C_t$, so they
    teach the new classes what they are not, while the old classes' outputs, which
    poor generated data would degrade, are left to CWR* (use with
    :class:`~avalanche_ext.plugins.CWRStarHead`). For a generated latent $\\tilde z$ of old
    class $\\tilde y$ and logits $o = g(\\tilde z)$ (see
    :func:`~avalanche_ext.functional.negative_replay.restrict_gradient`),

    $$\\ell_{neg} = \\mathrm{CE}\\big([\\,o_k \\text{ if } k\\in C_t \\text{ else }
    \\mathrm{sg}(o_k)\\,]_k,\\ \\tilde y\\big),$$

    with $\\mathrm{sg}$ the stop-gradient: $\\partial\\ell_{neg}/\\partial W_k = 0$ for every old
    class $k$. With ``negative=False`` the same samples are ordinary labelled replay
    (positive generative latent replay) and the old classes' rows are trained on them.

    Paper: Graffieti, Maltoni, Pellegrini, Lomonaco, "Generative Negative Replay for
    Continual Learning", Neural Networks 162, 2023, https://arxiv.org/abs/2204.05842 .

    Scenarios: class-incremental (one shared head); most useful when each experience
    holds one or a few classes.

    Example:
        >>> gnr = GenerativeLatentReplayPlugin("features", negative=True)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[CWRStarHead("classifier"), gnr])       # doctest: +SKIP

    Args:
        latent_layer: name of the submodule whose output is the latent layer.
        negative: replay generated latents as negatives only (GNR) or with their labels.
        replay_batch_size: generated latents per minibatch; ``None`` = ``train_mb_size``.
        free_experiences: experiences before the layers below the cut are frozen (>= 0).
        lower_lr_factor: fraction of each update applied below the cut afterwards, in [0, 1).
        conditional: class-conditional VAE (required for ``negative=False``).
        vae_hidden: hidden width of the VAE.
        code_dim: size of the VAE's code.
        beta: weight of the VAE's KL term.
        vae_epochs: epochs of VAE training after each experience (>= 1).
        vae_lr: Adam learning rate of the VAE.
        vae_batch_size: minibatch size of VAE training.
        replay_per_class: samples per known class the VAE generates for its own
            continual training (see :func:`~avalanche_ext.models.latent_vae.train_continually`).
        seed: seed of the VAE's training and sampling.

    Raises:
        ValueError: a bad size, epoch count or rate (the message names the argument), or
            ``negative=False`` with ``conditional=False``.
    """

    def __init__(
        self,
        latent_layer: str = "features",
        *,
        negative: bool = True,
        replay_batch_size: Optional[int] = None,
        free_experiences: int = 1,
        lower_lr_factor: float = 0.0,
        conditional: bool = True,
        vae_hidden: int = 256,
        code_dim: int = 32,
        beta: float = 1.0,
        vae_epochs: int = 10,
        vae_lr: float = 1e-3,
        vae_batch_size: int = 128,
        replay_per_class: int = 1000,
        seed: int = 0,
    ):
        if not negative and not conditional:
            raise ValueError("positive generative replay needs labels: use conditional=True")
        super().__init__(latent_layer, replay_batch_size=replay_batch_size, free_experiences=free_experiences,
                         lower_lr_factor=lower_lr_factor)
        self.generator = LatentGenerator(
            conditional=conditional, vae_hidden=vae_hidden, code_dim=code_dim, beta=beta, vae_epochs=vae_epochs,
            vae_lr=vae_lr, vae_batch_size=vae_batch_size, replay_per_class=replay_per_class, seed=seed,
        )
        self.negative = bool(negative)
        self._current: list[int] = []
        self._n_outputs: Optional[int] = None
        self._measured: Optional[tuple[int, int]] = None

    @property
    def vae(self) -> Optional[LatentVAE]:
        """The generator's VAE (``None`` before the first experience)."""
        return self.generator.vae

    @property
    def known_classes(self) -> list[int]:
        """Classes the generator has learned."""
        return self.generator.known_classes

    def old_classes(self) -> list[int]:
        """Classes learned before the current experience and absent from it."""
        return [c for c in self.generator.known_classes if c not in self._current]

    def measure(self, model: nn.Module, input_shape: Iterable[int]) -> None:
        """Learn the sizes :meth:`memory_report` needs before training: the latent and input shapes,
        the model's outputs and the VAE's parameters (a VAE of that size is built to count them,
        which draws its initial weights from torch's global random generator)."""
        super().measure(model, input_shape)
        self._n_outputs = output_size(model, torch.zeros(1, *self.input_shape))
        vae = self.generator.vae
        if vae is None:
            vae = self.generator.blueprint(math.prod(self.latent_shape), self._n_outputs)
        self._measured = _size(vae)

    # --------------------------------------------------------- replay source
    def replay_batch(self, n: int, strategy: Any) -> Optional[tuple[Tensor, Tensor]]:
        old = self.old_classes()
        if self.generator.vae is None or not old:
            return None
        return self.generator.to(strategy.device).sample(n, old)

    def replayed_class_counts(self, strategy: Any) -> dict[int, int]:
        self._current = experience_classes(strategy.experience)  # CWR* may ask before our before_training_exp
        old = self.old_classes() if self.generator.vae is not None else []
        if self.negative or not old:
            return {}
        n = (self.replay_batch_size or strategy.train_mb_size) * len(strategy.dataloader)
        return {c: max(1, n // len(old)) for c in old}

    def remember(self, z: Tensor, y: Tensor, strategy: Any) -> None:
        self.generator.learn(z, y, n_classes=self._n_outputs, step=self.experiences_seen, device=strategy.device)

    def memory_report(self) -> dict[str, Number]:
        """The generator's size (``generator_bytes``, ``generator_params``: the whole replay memory of
        this method) and, as ``equal_bytes.*``, a memory of stored samples of the same bytes (see
        :func:`~avalanche_ext.functional.memory.replay_memory_figures`). Empty until the sizes are
        known (after :meth:`measure` or the first experience)."""
        size = self._measured if self.generator.vae is None else _size(self.generator.vae)
        if size is None or self.latent_shape is None or self.input_shape is None:
            return {}
        params, nbytes = size
        n_equal = nbytes // latent_memory_bytes(1, self.latent_shape)
        figures = replay_memory_figures(n_equal, self.latent_shape, self.input_shape)
        return {"generator_bytes": nbytes, "generator_params": params,
                **{f"equal_bytes.{k}": v for k, v in figures.items()}}

    # ------------------------------------------------------------------ hooks
    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._current = experience_classes(strategy.experience)
        self.generator.to(strategy.device)  # a VAE restored by load_state_dict is on the CPU
        super().before_training_exp(strategy, *args, **kwargs)

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        super().after_forward(strategy, *args, **kwargs)
        if self.negative and self._n_replayed:
            strategy.mb_output = restrict_gradient(strategy.mb_output, slice(self._n_new, None), self._current)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.generator.vae is None:  # the VAE is conditioned on every output of the model
            x, _ = first_samples(strategy.experience.dataset, 1)
            self._n_outputs = output_size(strategy.model, x.to(strategy.device))
        super().after_training_exp(strategy, *args, **kwargs)

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator": self.generator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.load_state_dict(state["generator"])


__all__ = ["GenerativeLatentReplayPlugin", "experience_classes"]
