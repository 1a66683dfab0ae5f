"""Latent replay: replay stored activations of a named layer instead of raw inputs.

The model is cut at a named *latent layer*. After the first experience(s) the layers
below the cut are frozen (or trained with a smaller learning rate), so the activations
they produce for old data stay valid; those activations are stored, and every
minibatch of new inputs is extended with stored activations injected directly at the
latent layer. Only the layers above the cut see the replayed samples, which makes
replay cheap in memory (a latent vector instead of an image) and in compute (no
forward pass below the cut).

:class:`LatentReplayBase` is that loop over any source of latents (the cut itself is
:class:`~avalanche_ext.models.latent_split.LatentCut`); :class:`LatentReplayPlugin` replays a
:class:`~avalanche_ext.storage.LatentBuffer`.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from ..functional.memory import replay_memory_figures
from ..models.latent_split import LatentCut, latent_shape
from ..protocols import Number
from ..storage.latent_buffer import LatentBuffer


def dataset_tensors(dataset: Any, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """All inputs and targets of an Avalanche dataset, in order, without augmentation."""
    from torch.utils.data import DataLoader

    if hasattr(dataset, "eval"):
        dataset = dataset.eval()
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(batch[0])
        ys.append(batch[1])
    return torch.cat(xs), torch.cat(ys).long()


def first_samples(dataset: Any, n: int = 2) -> tuple[Tensor, Tensor]:
    """The first ``n`` samples of a dataset, as tensors."""
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(dataset, batch_size=n, shuffle=False)))
    return batch[0], batch[1]


class LatentReplayBase(SupervisedPlugin):
    """The loop of latent replay over any source of latents; subclasses say what to replay.

    Before each experience past the first ``free_experiences`` the layers below
    ``latent_layer`` are frozen (or slowed down, ``lower_lr_factor``); every training
    minibatch gets ``replay_batch_size`` rows from :meth:`replay_batch` appended at the
    cut, their labels appended to the targets; after each experience the latents of its
    training data go to :meth:`remember`. :class:`LatentReplayPlugin` stores them, and
    :class:`~avalanche_ext.plugins.generative_latent_replay.GenerativeLatentReplayPlugin`
    learns a generator from them.

    Args:
        latent_layer: name of the submodule whose output is the latent layer.
        replay_batch_size: latents added to every minibatch; ``None`` = the strategy's ``train_mb_size``.
        free_experiences: experiences during which the layers below the cut train at the full
            learning rate (>= 0; 0 freezes them from the start, for a pretrained backbone).
        lower_lr_factor: after those experiences, fraction of each update applied to the layers
            below (0 = frozen, in [0, 1)).

    Raises:
        ValueError: ``replay_batch_size`` or ``free_experiences`` out of range, or a bad
            ``latent_layer`` / ``lower_lr_factor``.
    """

    def __init__(self, latent_layer: str = "features", *, replay_batch_size: Optional[int] = None,
                 free_experiences: int = 1, lower_lr_factor: float = 0.0):
        super().__init__()
        if replay_batch_size is not None and replay_batch_size <= 0:
            raise ValueError(f"replay_batch_size must be > 0 or None, got {replay_batch_size}")
        if free_experiences < 0:
            raise ValueError(f"free_experiences must be >= 0, got {free_experiences}")
        self.cut = LatentCut(latent_layer, lower_lr_factor)
        self.latent_layer = latent_layer
        self.replay_batch_size = replay_batch_size
        self.free_experiences = int(free_experiences)
        self.lower_lr_factor = float(lower_lr_factor)
        #: experiences trained so far (kept in the state, so a restored plugin resumes correctly).
        self.experiences_seen = 0
        #: shapes of one latent and of one input (set by :meth:`measure` or the first experience).
        self.latent_shape: Optional[tuple[int, ...]] = None
        self.input_shape: Optional[tuple[int, ...]] = None
        self._n_new = 0
        self._n_replayed = 0

    @property
    def lower_names(self) -> list[str]:
        """Names of the parameters below the cut (known once they are frozen)."""
        return self.cut.lower_names

    def attach(self, model: nn.Module) -> nn.Module:
        """Check that ``model`` can be cut at ``latent_layer`` and hook the injection there."""
        return self.cut.attach(model)

    def measure(self, model: nn.Module, input_shape: Iterable[int]) -> None:
        """Learn the shapes :meth:`memory_report` needs before training (a forward pass on zeros)."""
        self.input_shape = tuple(int(d) for d in input_shape)
        self.latent_shape = latent_shape(model, self.latent_layer, self.input_shape)

    # --------------------------------------------------------- replay source
    def replay_batch(self, n: int, strategy: Any) -> Optional[tuple[Tensor, Tensor]]:
        """``n`` latents and labels to add to the current minibatch (``None``: nothing yet)."""
        raise NotImplementedError

    def remember(self, z: Tensor, y: Tensor, strategy: Any) -> None:
        """Keep what replay needs from the experience just learned (latents ``z``, labels ``y``)."""
        raise NotImplementedError

    def replayed_class_counts(self, strategy: Any) -> dict[int, int]:
        """Samples per old class this experience replays with their labels (used by CWR*)."""
        return {}

    # ------------------------------------------------------------------ hooks
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.attach(strategy.model)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.attach(strategy.model)
        if self.experiences_seen >= self.free_experiences:
            if not self.cut.split_done:
                x, _ = first_samples(strategy.experience.dataset)
                self.cut.split(strategy.model, x.to(strategy.device))
            self.cut.freeze_below(strategy.model)

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.hold_frozen(strategy.model)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._n_new = len(strategy.mb_y)
        self._n_replayed = 0
        batch = self.replay_batch(self.replay_batch_size or strategy.train_mb_size, strategy)
        if batch is None:
            return
        z, y = batch
        dev = strategy.mb_y.device
        self.cut.inject(z.to(dev))
        mb = strategy.mbatch
        mb[1] = torch.cat([mb[1], y.to(dev, mb[1].dtype)])
        if len(mb) > 2:
            mb[-1] = torch.cat([mb[-1], torch.zeros(len(y), dtype=mb[-1].dtype, device=dev)])
        self._n_replayed = len(y)

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.check_injected()

    def before_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.before_step(strategy.model)

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.cut.after_step(strategy.model)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        x, y = dataset_tensors(strategy.experience.dataset)  # on the CPU; moved to the model chunk by chunk
        z = self.cut.latents(strategy.model, x, batch_size=strategy.eval_mb_size)
        self.latent_shape, self.input_shape = tuple(z.shape[1:]), tuple(x.shape[1:])
        self.remember(z.cpu(), y, strategy)
        self.experiences_seen += 1

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {**self.cut.state_dict(), "latent_shape": self.latent_shape, "input_shape": self.input_shape,
                "experiences_seen": self.experiences_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cut.load_state_dict(state)
        self.experiences_seen = int(state["experiences_seen"])
        self.latent_shape = None if state["latent_shape"] is None else tuple(state["latent_shape"])
        shape = state.get("input_shape")
        self.input_shape = None if shape is None else tuple(shape)


class LatentReplayPlugin(LatentReplayBase):
    """Latent replay for any model with a named layer to cut at (Pellegrini et al., IROS 2020).

    Idea: the layers below ``latent_layer`` are trained normally during the first
    ``free_experiences`` experiences and frozen afterwards (or, with
    ``lower_lr_factor > 0``, updated with that fraction of every optimizer step). After
    each experience the latent activations of its training data are stored in a
    :class:`~avalanche_ext.storage.LatentBuffer` balanced by class or experience,
    ``mem_size`` samples in all.
    Each training minibatch of ``B`` new inputs is extended with ``R`` stored latents,
    appended to the batch at the output of ``latent_layer``, so the layers above see
    ``B + R`` rows and the loss is

    $$\\mathcal{L} = \\frac{1}{B+R}\\Big(\\sum_{i\\le B} \\ell(g(f(x_i)), y_i)
    + \\sum_{j\\le R} \\ell(g(z_j), y_j)\\Big),$$

    with $f$ the layers below the cut, $g$ those above and $(z_j, y_j)$ from memory.
    The cut must be a point every sample passes through once (e.g. ``features`` in
    the default networks, or ``features.2`` for the first hidden layer of the MLP);
    models with one head per task (``MultiTaskModule``) are not supported.

    Paper: Pellegrini, Graffieti, Lomonaco, Maltoni, "Latent Replay for Real-Time
    Continual Learning", IROS 2020, https://arxiv.org/abs/1912.01100 .

    Scenarios: class- and domain-incremental (one shared head).

    Example:
        >>> from avalanche.training import Naive
        >>> plugin = LatentReplayPlugin(latent_layer="features", mem_size=1000)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[plugin])                               # doctest: +SKIP
        >>> for exp in stream.train_stream:
        ...     strategy.train(exp)                                          # doctest: +SKIP

    Args:
        latent_layer: name of the submodule whose output is the latent layer.
        mem_size: number of latent samples kept (> 0).
        balance: ``"class"`` or ``"experience"`` balanced memory.
        replay_batch_size: latents added to every minibatch; ``None`` = the strategy's
            ``train_mb_size``.
        free_experiences: experiences during which the layers below the cut train at the
            full learning rate (>= 0; 0 freezes them from the start, for a pretrained
            backbone).
        lower_lr_factor: after those experiences, fraction of each update applied to the
            layers below (0 = frozen, in [0, 1)).
        seed: seed of the memory's random choices.

    Raises:
        ValueError: a bad size, factor or layer name (the message names the argument).
    """

    def __init__(
        self,
        latent_layer: str = "features",
        mem_size: int = 1500,
        *,
        balance: str = "class",
        replay_batch_size: Optional[int] = None,
        free_experiences: int = 1,
        lower_lr_factor: float = 0.0,
        seed: int = 0,
    ):
        if mem_size <= 0:
            raise ValueError(f"mem_size must be > 0, got {mem_size}")
        super().__init__(latent_layer, replay_batch_size=replay_batch_size, free_experiences=free_experiences,
                         lower_lr_factor=lower_lr_factor)
        self.mem_size = int(mem_size)
        self.buffer = LatentBuffer(mem_size, balance, seed=seed)

    def replay_batch(self, n: int, strategy: Any) -> Optional[tuple[Tensor, Tensor]]:
        return None if len(self.buffer) == 0 else self.buffer.sample(n)

    def remember(self, z: Tensor, y: Tensor, strategy: Any) -> None:
        self.buffer.add(z, y, self.experiences_seen)

    def replayed_class_counts(self, strategy: Any) -> dict[int, int]:
        return self.buffer.class_counts()

    def memory_report(self) -> dict[str, Number]:
        """A full memory's bytes as latents and as raw inputs (see
        :func:`~avalanche_ext.functional.memory.replay_memory_figures`); only ``samples`` until the
        shapes are known (after :meth:`measure` or the first experience)."""
        if self.latent_shape is None or self.input_shape is None:
            return {"samples": self.mem_size}
        return replay_memory_figures(self.mem_size, self.latent_shape, self.input_shape)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])


__all__ = ["LatentReplayBase", "LatentReplayPlugin", "dataset_tensors", "first_samples"]
