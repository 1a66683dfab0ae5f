"""Generative Negative Replay (GNR) over a CWR* output layer, and its positive counterpart."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from ..models.latent_vae import LatentVAE, train_continually
from .latent_replay import LatentLayerError, LatentReplayPlugin, find_layer


def restrict_gradient(logits: Tensor, rows: slice, columns: Iterable[int]) -> Tensor:
    """Same values as ``logits``; in ``rows`` only the given ``columns`` carry gradient.

    ``torch.where`` with a detached copy: the loss of those rows cannot reach any output
    unit outside ``columns`` (nor the weights of those units), whatever the loss is.
    """
    keep = torch.ones_like(logits, dtype=torch.bool)
    keep[rows] = False
    cols = torch.as_tensor(sorted(set(int(c) for c in columns)), dtype=torch.long, device=logits.device)
    if cols.numel():
        keep[rows, cols] = True
    return torch.where(keep, logits, logits.detach())


def experience_classes(experience: Any) -> list[int]:
    """Classes present in the training data of ``experience``."""
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = torch.unique(torch.as_tensor(list(experience.dataset.targets))).tolist()
    return sorted(int(c) for c in classes)


class CWRStarHead(SupervisedPlugin):
    """CWR* consolidation of the output layer (Lomonaco, Maltoni, Pellegrini 2020).

    Idea: every class has a *consolidated* weight vector $cw_c$. Before an experience
    the output layer's rows are reset: rows of the classes trained now (the
    experience's classes, plus classes replayed with their labels) start from $cw_c$
    (or zero for a new class), all other rows are zero and receive no gradient. After
    the experience, with $w_c$ the trained rows, $\\bar w$ their mean and $n_c$ / $N_c$
    the number of samples of class $c$ in this experience / before it:

    $$cw_c \\leftarrow \\frac{cw_c\\sqrt{N_c / n_c} + (w_c - \\bar w)}{\\sqrt{N_c / n_c} + 1},
    \\qquad N_c \\leftarrow N_c + n_c,$$

    and the layer is set to $cw$ for evaluation.

    Differences from Avalanche's ``CWRStarPlugin`` (why this one exists): the layer's
    bias is held at zero (the papers' output layer has none; a free bias would drift
    for classes that are never consolidated); rows not trained now are kept at exactly
    zero by detaching their logits instead of being trained and thrown away;
    classes replayed with labels by another plugin (``replayed_class_counts``) are
    trained and consolidated with their replay counts, as AR1* does with latent
    replay; and the state round-trips through :meth:`state_dict`.

    Paper: Lomonaco, Maltoni, Pellegrini, "Rehearsal-Free Continual Learning over
    Small Non-I.I.D. Batches", CVPR Workshops 2020, https://arxiv.org/abs/1907.03799 .

    Scenarios: class-incremental (one shared head; task labels unused).

    Example:
        >>> cwr = CWRStarHead("classifier")
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[cwr])                                  # doctest: +SKIP

    Args:
        layer_name: name of the output ``nn.Linear`` layer.
        old_rows: ``"zero"`` or ``"consolidated"``: what the rows not trained in an
            experience hold during it (they never receive gradient).
        mean_shift: subtract the mean of the trained rows before consolidating.
    """

    def __init__(self, layer_name: str = "classifier", *, old_rows: str = "zero", mean_shift: bool = True):
        super().__init__()
        if not layer_name:
            raise ValueError("layer_name must name the output Linear layer")
        if old_rows not in ("zero", "consolidated"):
            raise ValueError(f"old_rows must be 'zero' or 'consolidated', got {old_rows!r}")
        self.layer_name = layer_name
        self.old_rows = old_rows
        self.mean_shift = bool(mean_shift)
        self.cw: Optional[Tensor] = None
        self.seen: Optional[Tensor] = None
        self.past: Optional[Tensor] = None
        self.cur_counts: dict[int, int] = {}
        self.trainable: list[int] = []
        self.current_classes: list[int] = []

    def layer(self, model: nn.Module) -> nn.Linear:
        """The CWR* layer of ``model``; raises a clear error when it is missing or not linear."""
        try:
            layer = find_layer(model, self.layer_name)
        except LatentLayerError as e:
            raise LatentLayerError(str(e).replace("as the latent layer", "as the CWR* output layer")) from None
        if not isinstance(layer, nn.Linear):
            raise LatentLayerError(f"the CWR* layer {self.layer_name!r} must be an nn.Linear, got {type(layer).__name__}")
        return layer

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        layer = self.layer(strategy.model)
        if self.cw is None:
            self.cw = torch.zeros_like(layer.weight.detach()).cpu()
            self.seen = torch.zeros(layer.out_features, dtype=torch.bool)
            self.past = torch.zeros(layer.out_features)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        layer = self.layer(strategy.model)
        if layer.bias is not None:  # the bias is held at zero (set here, after every plugin's checks)
            with torch.no_grad():
                layer.bias.zero_()
            layer.bias.requires_grad_(False)
        # the rows trained now are temporary weights: they start with a fresh optimizer state too
        # (stale Adam moments would make the first steps of every experience several times larger)
        for p in layer.parameters():
            strategy.optimizer.state.pop(p, None)
        targets = torch.as_tensor(list(strategy.experience.dataset.targets)).long()
        counts = {int(c): int(n) for c, n in zip(*torch.unique(targets, return_counts=True))}
        self.current_classes = sorted(counts)
        for plugin in strategy.plugins:
            extra = getattr(plugin, "replayed_class_counts", None)
            if plugin is not self and callable(extra):
                for c, n in extra(strategy).items():
                    counts[int(c)] = counts.get(int(c), 0) + int(n)
        self.cur_counts = {c: n for c, n in counts.items() if n > 0}
        self.trainable = sorted(self.cur_counts)
        with torch.no_grad():
            if self.old_rows == "zero":
                layer.weight.zero_()
            else:
                self.set_consolidated(layer)
            for c in self.trainable:
                if self.seen[c]:
                    layer.weight[c].copy_(self.cw[c].to(layer.weight.device))
                else:
                    layer.weight[c].zero_()

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        out = strategy.mb_output
        if out.shape[-1] != len(self.seen):
            raise LatentLayerError(
                f"CWR* needs {self.layer_name!r} to be the output layer: the model gives {out.shape[-1]} outputs, "
                f"the layer has {len(self.seen)}"
            )
        strategy.mb_output = restrict_gradient(out, slice(None), self.trainable)

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        # rows outside the trained classes get no gradient, but a stateful optimizer (momentum,
        # Adam's moments, weight decay) would still move them: put them back.
        layer = self.layer(strategy.model)
        fixed = torch.ones(len(self.seen), dtype=torch.bool)
        fixed[self.trainable] = False
        with torch.no_grad():
            if self.old_rows == "zero":
                layer.weight[fixed] = 0.0
            else:
                layer.weight[fixed] = (self.cw * self.seen[:, None])[fixed].to(layer.weight.device)
            if layer.bias is not None:
                layer.bias.zero_()

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        layer = self.layer(strategy.model)
        with torch.no_grad():
            w = layer.weight.detach().cpu()
            rows = torch.as_tensor(self.trainable, dtype=torch.long)
            mean = w[rows].mean() if self.mean_shift else 0.0
            for c in self.trainable:
                new = w[c] - mean
                n = float(self.cur_counts[c])
                if self.seen[c]:
                    r = math.sqrt(float(self.past[c]) / n)
                    self.cw[c] = (self.cw[c] * r + new) / (r + 1)
                else:
                    self.cw[c] = new
                    self.seen[c] = True
                self.past[c] += n
            self.set_consolidated(layer)

    def set_consolidated(self, layer: nn.Linear) -> None:
        """Load the consolidated weights into ``layer`` (zero for classes never seen)."""
        with torch.no_grad():
            layer.weight.copy_((self.cw * self.seen[:, None]).to(layer.weight.device))

    def memory_bytes(self) -> int:
        """Bytes of the consolidated weights and counts."""
        if self.cw is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (self.cw, self.seen, self.past))

    def state_dict(self) -> dict[str, Any]:
        return {"cw": None if self.cw is None else self.cw.clone(),
                "seen": None if self.seen is None else self.seen.clone(),
                "past": None if self.past is None else self.past.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cw = None if state["cw"] is None else state["cw"].clone()
        self.seen = None if state["seen"] is None else state["seen"].clone()
        self.past = None if state["past"] is None else state["past"].clone()


class GenerativeLatentReplayPlugin(LatentReplayPlugin):
    """Generative (Negative) Replay of latent activations (Graffieti et al., Neural Networks 2023).

    Idea: as in :class:`LatentReplayPlugin` the model is cut at ``latent_layer`` and the
    layers below are frozen after the first experience(s), but no activation is stored:
    a :class:`~avalanche_ext.models.latent_vae.LatentVAE` is trained continually on the
    latents of every experience (with self-replay of the classes it already knows) and
    each minibatch is extended with ``R`` latents it generates for the old classes.

    With ``negative=True`` (GNR) the generated samples are *negatives only*: their loss
    reaches only the output units of the current experience's classes $C_t$, so they
    teach the new classes what they are not, while the old classes' outputs, which
    poor generated data would degrade, are left to CWR* (use with
    :class:`CWRStarHead`). For a generated latent $\\tilde z$ of old class $\\tilde y$
    and logits $o = g(\\tilde z)$,

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
        super().__init__(latent_layer, mem_size=1, replay_batch_size=replay_batch_size,
                         free_experiences=free_experiences, lower_lr_factor=lower_lr_factor, seed=seed)
        if not negative and not conditional:
            raise ValueError("positive generative replay needs labels: use conditional=True")
        for name, value in (("vae_hidden", vae_hidden), ("code_dim", code_dim), ("vae_epochs", vae_epochs),
                            ("vae_batch_size", vae_batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if replay_per_class < 1:
            raise ValueError(f"replay_per_class must be >= 1, got {replay_per_class}")
        if vae_lr <= 0 or beta < 0:
            raise ValueError(f"vae_lr must be > 0 and beta >= 0, got {vae_lr}, {beta}")
        self.negative = bool(negative)
        self.positive = not self.negative
        self.conditional = bool(conditional)
        self.vae_kwargs = dict(hidden=vae_hidden, code_dim=code_dim, beta=beta)
        self.vae_epochs, self.vae_lr, self.vae_batch_size = int(vae_epochs), float(vae_lr), int(vae_batch_size)
        self.replay_per_class = int(replay_per_class)
        self.seed = int(seed)
        self.vae: Optional[LatentVAE] = None
        self.known_classes: list[int] = []
        self.sample_rng = torch.Generator().manual_seed(seed)
        self._current: list[int] = []
        self._replayed = False
        self._n_outputs: Optional[int] = None
        self.vae_losses: list[list[float]] = []

    def build_vae(self, latent_dim: int, n_classes: int, nonnegative: bool = True) -> LatentVAE:
        """Create the generator (done after the first experience, when the sizes are known)."""
        self.vae = LatentVAE(latent_dim, n_classes if self.conditional else None, nonnegative=nonnegative,
                             **self.vae_kwargs)
        return self.vae

    def old_classes(self) -> list[int]:
        """Classes learned before the current experience and absent from it."""
        return [c for c in self.known_classes if c not in self._current]

    def replay_batch(self, n: int, strategy: Any) -> Optional[tuple[Tensor, Tensor]]:
        old = self.old_classes()
        if self.vae is None or not old:
            return None
        if self.conditional:
            z, y = self.vae.sample(n, classes=old, generator=self.sample_rng)
        else:
            z, _ = self.vae.sample(n, generator=self.sample_rng)
            pick = torch.randint(len(old), (n,), generator=self.sample_rng)
            y = torch.as_tensor(old, dtype=torch.long)[pick]  # any old class: only "not current" matters
        return z.cpu(), y.cpu()

    def replayed_class_counts(self, strategy: Any) -> dict[int, int]:
        self._current = experience_classes(strategy.experience)  # CWR* may ask before our before_training_exp
        old = self.old_classes() if self.vae is not None else []
        if self.negative or not old:
            return {}
        n = (self.replay_batch_size or strategy.train_mb_size) * len(strategy.dataloader)
        return {c: max(1, n // len(old)) for c in old}

    def remember(self, z: Tensor, y: Tensor, strategy: Any) -> None:
        z = z.flatten(1)
        if self.vae is None:
            self.build_vae(z.shape[1], self._n_outputs or int(y.max()) + 1, nonnegative=bool((z >= 0).all()))
            self.vae.to(strategy.device)
        losses = train_continually(self.vae, z, y, epochs=self.vae_epochs, batch_size=self.vae_batch_size,
                                   lr=self.vae_lr, replay_per_class=self.replay_per_class, seed=self.seed + self.experiences_seen)
        self.vae_losses.append(losses)
        self.known_classes = sorted(set(self.known_classes) | set(int(c) for c in torch.unique(y)))

    def memory_bytes(self) -> int:
        """Bytes of the generator's parameters (the whole replay memory of this method)."""
        if self.vae is None:
            return 0
        return sum(p.numel() * p.element_size() for p in self.vae.parameters())

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.vae is None:
            from .latent_replay import _dataset_tensors_head

            x, _ = _dataset_tensors_head(strategy.experience.dataset, 1)
            was_training = strategy.model.training
            strategy.model.eval()
            with torch.no_grad():
                self._n_outputs = int(strategy.model(x.to(strategy.device)).shape[-1])
            strategy.model.train(was_training)
        super().after_training_exp(strategy, *args, **kwargs)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._current = experience_classes(strategy.experience)
        super().before_training_exp(strategy, *args, **kwargs)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._replayed = False
        super().before_forward(strategy, *args, **kwargs)
        self._replayed = self._pending is not None

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        super().after_forward(strategy, *args, **kwargs)
        if self.negative and self._replayed:
            strategy.mb_output = restrict_gradient(strategy.mb_output, slice(self._n_new, None), self._current)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            vae=None if self.vae is None else {k: v.clone() for k, v in self.vae.state_dict().items()},
            vae_shape=None if self.vae is None else (self.vae.input_dim, self.vae.n_classes, self.vae.nonnegative),
            known_classes=list(self.known_classes),
            sample_rng=self.sample_rng.get_state(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.known_classes = list(state["known_classes"])
        self.sample_rng.set_state(state["sample_rng"])
        if state["vae"] is None:
            self.vae = None
        else:
            dim, n_classes, nonneg = state["vae_shape"]
            self.vae = LatentVAE(dim, n_classes, nonnegative=nonneg, **self.vae_kwargs)
            self.vae.load_state_dict(state["vae"])
            self.vae.eval()


__all__ = ["CWRStarHead", "GenerativeLatentReplayPlugin", "experience_classes", "restrict_gradient"]
