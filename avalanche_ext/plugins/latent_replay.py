"""Latent replay: replay stored activations of a named layer instead of raw inputs.

The model is cut at a named *latent layer*. After the first experience(s) the layers
below the cut are frozen (or trained with a smaller learning rate), so the activations
they produce for old data stay valid; those activations are stored, and every
minibatch of new inputs is extended with stored activations injected directly at the
latent layer. Only the layers above the cut see the replayed samples, which makes
replay cheap in memory (a latent vector instead of an image) and in compute (no
forward pass below the cut).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

BALANCE_MODES = ("class", "experience")


class LatentLayerError(ValueError):
    """The model has no layer with the requested name, or cannot be cut there."""


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule of ``model`` called ``name`` (as in ``model.named_modules()``).

    Raises:
        LatentLayerError: no such submodule; the message lists the names that exist.
    """
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = [n for n in modules if n]
    shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    raise LatentLayerError(
        f"the model ({type(model).__name__}) has no layer named {name!r} to use as the latent layer; "
        f"pass latent_layer= one of: {shown}"
    )


class LatentCapture:
    """Context manager that records the output of one layer during forward passes."""

    def __init__(self, layer: nn.Module):
        self.layer = layer
        self.outputs: list[Tensor] = []
        self._handle: Optional[Any] = None

    def __enter__(self) -> "LatentCapture":
        self._handle = self.layer.register_forward_hook(lambda m, i, o: self.outputs.append(o.detach()))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


@torch.no_grad()
def compute_latents(model: nn.Module, layer: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Activations of ``layer`` for inputs ``x`` (model in eval mode, no gradient).

    The whole model is run so any network with the layer on its forward path works;
    the mode of the model is restored afterwards.
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            with LatentCapture(layer) as cap:
                model(x[i : i + batch_size])
            if len(cap.outputs) != 1:
                raise LatentLayerError(
                    f"the latent layer ran {len(cap.outputs)} times in one forward pass; pick a layer used exactly once"
                )
            out.append(cap.outputs[0])
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def split_model(model: nn.Module, layer_name: str, example: Tensor) -> tuple[list[str], list[str]]:
    """The part of ``model`` below the cut at ``layer_name``.

    Returns the names of the parameters that influence the layer's output (found by
    differentiating it on ``example``, so any architecture works, not only
    ``nn.Sequential``) and the names of the modules that run before the layer's output
    is ready (the layer itself and everything it consumes, not its ancestors).

    Raises:
        LatentLayerError: no such layer, or the layer does not run on ``example``.
    """
    layer = find_layer(model, layer_name)
    named_modules = dict(model.named_modules())
    ancestors = {n for n in named_modules if n == "" or layer_name.startswith(n + ".")}
    finished: list[str] = []
    outputs: list[Tensor] = []
    handles = [m.register_forward_hook(lambda m, i, o, n=n: finished.append(n))
               for n, m in named_modules.items() if n not in ancestors]
    handles.append(layer.register_forward_hook(lambda m, i, o: outputs.append(o)))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen ones stay frozen
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(example)
        if not outputs:
            raise LatentLayerError(f"the layer {layer_name!r} is not used in the model's forward pass")
        z = outputs[0]
        below_modules = finished[: finished.index(layer_name) + 1]
        if not z.requires_grad or not named:
            return [], below_modules
        grads = torch.autograd.grad(z.float().sum(), [p for _, p in named], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [n for (n, _), g in zip(named, grads) if g is not None], below_modules


def parameters_below(model: nn.Module, layer_name: str, example: Tensor) -> list[str]:
    """Names of the parameters that influence the output of ``layer_name`` (see :func:`split_model`)."""
    return split_model(model, layer_name, example)[0]


class LatentBuffer:
    """A balanced memory of latent activations, its size counted in samples.

    Samples are grouped by class or by experience; after every :meth:`add` each group
    holds ``max_size / n_groups`` samples (water-filling: a group with fewer samples
    than its share leaves the rest to the others), so group sizes differ by at most one
    unless a group ran out of samples. Which samples a group keeps is random.

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
        return sum(t.numel() * t.element_size() for t in (self.z, self.y, self.exp))

    def state_dict(self) -> dict[str, Any]:
        return {"max_size": self.max_size, "balance": self.balance, "z": self.z.clone(), "y": self.y.clone(),
                "exp": self.exp.clone(), "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_size = int(state["max_size"])
        self.balance = state["balance"]
        self.z, self.y, self.exp = state["z"].clone(), state["y"].clone(), state["exp"].clone()
        self.generator.set_state(state["rng"])


def _dataset_tensors(dataset: Any, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """All inputs and targets of an Avalanche dataset, in order, without augmentation."""
    from torch.utils.data import DataLoader

    if hasattr(dataset, "eval"):
        dataset = dataset.eval()
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(batch[0])
        ys.append(batch[1])
    return torch.cat(xs), torch.cat(ys).long()


class LatentReplayPlugin(SupervisedPlugin):
    """Latent replay for any model with a named layer to cut at (Pellegrini et al., IROS 2020).

    Idea: the layers below ``latent_layer`` are trained normally during the first
    ``free_experiences`` experiences and frozen afterwards (or, with
    ``lower_lr_factor > 0``, updated with that fraction of every optimizer step). After
    each experience the latent activations of its training data are stored in a
    :class:`LatentBuffer` balanced by class or experience, ``mem_size`` samples in all.
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
    """

    #: whether replayed samples carry labels that train their own classes' outputs.
    positive: bool = True

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
        super().__init__()
        if not latent_layer or not isinstance(latent_layer, str):
            raise ValueError(f"latent_layer must be a layer name, got {latent_layer!r}")
        if mem_size <= 0:
            raise ValueError(f"mem_size must be > 0, got {mem_size}")
        if replay_batch_size is not None and replay_batch_size <= 0:
            raise ValueError(f"replay_batch_size must be > 0 or None, got {replay_batch_size}")
        if free_experiences < 0:
            raise ValueError(f"free_experiences must be >= 0, got {free_experiences}")
        if not 0.0 <= lower_lr_factor < 1.0:
            raise ValueError(f"lower_lr_factor must be in [0, 1), got {lower_lr_factor}")
        self.latent_layer = latent_layer
        self.mem_size = int(mem_size)
        self.replay_batch_size = replay_batch_size
        self.free_experiences = int(free_experiences)
        self.lower_lr_factor = float(lower_lr_factor)
        self.buffer = LatentBuffer(mem_size, balance, seed=seed)
        self.lower_names: list[str] = []
        self.lower_modules: list[str] = []
        self._lower_split_done = False
        #: experiences trained so far (kept in the state, so a restored plugin resumes correctly).
        self.experiences_seen = 0
        self.latent_shape: Optional[tuple[int, ...]] = None
        self._layer: Optional[nn.Module] = None
        self._handle: Optional[Any] = None
        self._pending: Optional[Tensor] = None
        self._n_new = 0
        self._lower_frozen = False
        self._snapshot: list[Tensor] = []

    # ------------------------------------------------------------------ checks
    def attach(self, model: nn.Module) -> nn.Module:
        """Check that ``model`` can be cut at ``latent_layer`` and hook the injection there."""
        from avalanche.models import MultiTaskModule

        if isinstance(model, MultiTaskModule):
            raise LatentLayerError(
                "latent replay needs a single-head model (class or domain scenario); "
                f"got a multi-task {type(model).__name__}"
            )
        layer = find_layer(model, self.latent_layer)
        if layer is not self._layer:
            self.detach()
            self._layer = layer
            self._handle = layer.register_forward_hook(self._inject)
        return layer

    def detach(self) -> None:
        """Remove the injection hook."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = None
        self._layer = None

    def _inject(self, module: nn.Module, inputs: Any, output: Tensor) -> Optional[Tensor]:
        if self._pending is None:
            return None
        extra, self._pending = self._pending, None
        return torch.cat([output, extra.to(output.device, output.dtype)])

    # --------------------------------------------------------- replay source
    def replay_batch(self, n: int, strategy: Any) -> Optional[tuple[Tensor, Tensor]]:
        """``n`` latents and labels to add to the current minibatch (``None``: nothing yet)."""
        if len(self.buffer) == 0:
            return None
        return self.buffer.sample(n)

    def remember(self, z: Tensor, y: Tensor, strategy: Any) -> None:
        """Store what replay needs from the experience just learned (latents ``z``, labels ``y``)."""
        self.buffer.add(z, y, self.experiences_seen)

    def replayed_class_counts(self, strategy: Any) -> dict[int, int]:
        """Samples per old class this experience replays with their labels (used by CWR*)."""
        return self.buffer.class_counts() if self.positive else {}

    def memory_bytes(self) -> int:
        """Bytes of replay memory currently held."""
        return self.buffer.nbytes()

    # ------------------------------------------------------------------ hooks
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.attach(strategy.model)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.attach(strategy.model)
        if self.experiences_seen >= self.free_experiences:
            self._slow_lower(strategy)

    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self._lower_frozen:
            self._lower_modules_eval(strategy.model)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._n_new = len(strategy.mb_y)
        n = self.replay_batch_size or strategy.train_mb_size
        batch = self.replay_batch(n, strategy)
        if batch is None:
            return
        z, y = batch
        dev = strategy.mb_y.device
        self._pending = z.to(dev)
        mb = strategy.mbatch
        mb[1] = torch.cat([mb[1], y.to(dev, mb[1].dtype)])
        if len(mb) > 2:
            mb[-1] = torch.cat([mb[-1], torch.zeros(len(y), dtype=mb[-1].dtype, device=dev)])

    def after_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self._pending is not None:
            self._pending = None
            raise LatentLayerError(
                f"the latent layer {self.latent_layer!r} was not run in the forward pass, so the replayed "
                "latents could not be injected"
            )

    def before_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self._lower_frozen and self.lower_lr_factor > 0:
            params = dict(strategy.model.named_parameters())
            self._snapshot = [params[n].detach().clone() for n in self.lower_names]

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self._snapshot:
            params = dict(strategy.model.named_parameters())
            with torch.no_grad():
                for n, old in zip(self.lower_names, self._snapshot):
                    p = params[n]
                    p.copy_(old + self.lower_lr_factor * (p - old))
            self._snapshot = []

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        x, y = _dataset_tensors(strategy.experience.dataset)
        z = compute_latents(strategy.model, self._layer, x.to(strategy.device), batch_size=strategy.eval_mb_size)
        self.latent_shape = tuple(z.shape[1:])
        self.remember(z.cpu(), y, strategy)
        self.experiences_seen += 1

    # ---------------------------------------------------------------- freezing
    def _slow_lower(self, strategy: Any) -> None:
        model = strategy.model
        if not self._lower_split_done:
            x, _ = _dataset_tensors_head(strategy.experience.dataset)
            self.lower_names, self.lower_modules = split_model(model, self.latent_layer, x.to(strategy.device))
            self._lower_split_done = True
        if self.lower_lr_factor == 0.0:
            params = dict(model.named_parameters())
            for n in self.lower_names:
                params[n].requires_grad_(False)
                params[n].grad = None
        self._lower_frozen = True
        self._lower_modules_eval(model)

    def _lower_modules_eval(self, model: nn.Module) -> None:
        """Batch-norm / dropout layers below the cut stop changing once the layers are frozen."""
        if self.lower_lr_factor > 0.0:
            return
        below = set(self.lower_modules)
        for name, module in model.named_modules():
            if name in below:
                module.eval()

    # ------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "lower_names": list(self.lower_names),
                "lower_modules": list(self.lower_modules), "split_done": self._lower_split_done,
                "lower_frozen": self._lower_frozen, "latent_shape": self.latent_shape,
                "experiences_seen": self.experiences_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.lower_names = list(state["lower_names"])
        self.lower_modules = list(state["lower_modules"])
        self._lower_split_done = bool(state["split_done"])
        self._lower_frozen = bool(state["lower_frozen"])
        self.experiences_seen = int(state["experiences_seen"])
        self.latent_shape = None if state["latent_shape"] is None else tuple(state["latent_shape"])


def _dataset_tensors_head(dataset: Any, n: int = 2) -> tuple[Tensor, Tensor]:
    """The first ``n`` samples of a dataset, as tensors."""
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(dataset, batch_size=n, shuffle=False)))
    return batch[0], batch[1]


def latent_memory_bytes(n_samples: int, latent_shape: Iterable[int], dtype: torch.dtype = torch.float32) -> int:
    """Bytes of ``n_samples`` latent vectors of ``latent_shape`` (labels not included)."""
    per = math.prod(int(d) for d in latent_shape)
    return int(n_samples) * per * torch.empty(0, dtype=dtype).element_size()


def latent_shape(model: nn.Module, layer_name: str, input_shape: Iterable[int]) -> tuple[int, ...]:
    """Shape of one sample's activation at ``layer_name`` (a forward pass on zeros)."""
    x = torch.zeros(1, *[int(d) for d in input_shape])
    return tuple(compute_latents(model, find_layer(model, layer_name), x).shape[1:])


def replay_memory_report(model: nn.Module, layer_name: str, input_shape: Iterable[int], mem_size: int) -> dict[str, Any]:
    """Bytes of a replay memory of ``mem_size`` samples stored as latents vs as raw inputs (float32).

    Labels (8 bytes a sample, ``int64``) are counted in neither figure; raw inputs are
    also given as ``uint8`` pixels, the cheapest lossless form of 8-bit images.
    """
    shape = latent_shape(model, layer_name, input_shape)
    input_shape = [int(d) for d in input_shape]
    return {
        "memory.samples": int(mem_size),
        "memory.latent_dim": math.prod(shape),
        "memory.latent_bytes": latent_memory_bytes(mem_size, shape),
        "memory.raw_bytes_float32": latent_memory_bytes(mem_size, input_shape),
        "memory.raw_bytes_uint8": latent_memory_bytes(mem_size, input_shape, torch.uint8),
    }


__all__ = [
    "LatentBuffer",
    "LatentCapture",
    "LatentLayerError",
    "LatentReplayPlugin",
    "compute_latents",
    "find_layer",
    "latent_memory_bytes",
    "latent_shape",
    "replay_memory_report",
    "parameters_below",
    "split_model",
]
