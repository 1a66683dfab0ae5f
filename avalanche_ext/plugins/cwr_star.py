"""CWR* consolidation of the output layer, as a plugin that composes with replay plugins."""

from __future__ import annotations

from typing import Any, Optional

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from ..functional.cwr import OLD_ROWS, consolidate, consolidated, start_weights
from ..functional.memory import tensors_bytes
from ..functional.negative_replay import restrict_gradient
from ..models.latent_split import LatentLayerError, find_layer
from ..protocols import Number


class CWRStarHead(SupervisedPlugin):
    """CWR* consolidation of the output layer (Lomonaco, Maltoni, Pellegrini 2020).

    Idea: every class has a *consolidated* weight vector $cw_c$ (the maths is in
    :mod:`avalanche_ext.functional.cwr`). Before an experience
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
        if old_rows not in OLD_ROWS:
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
        if self.cw is None:  # consolidated rows are kept on the CPU and moved to the layer's device when used
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
        start = start_weights(self.cw, self.seen, self.trainable, old_rows=self.old_rows)
        with torch.no_grad():
            layer.weight.copy_(start.to(layer.weight.device))

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
        fixed = torch.ones(len(self.seen), dtype=torch.bool, device=layer.weight.device)
        fixed[self.trainable] = False
        with torch.no_grad():
            if self.old_rows == "zero":
                layer.weight[fixed] = 0.0
            else:
                layer.weight[fixed] = consolidated(self.cw, self.seen).to(layer.weight.device)[fixed]
            if layer.bias is not None:
                layer.bias.zero_()

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        layer = self.layer(strategy.model)
        counts = {c: self.cur_counts[c] for c in self.trainable}
        self.cw, self.seen, self.past = consolidate(self.cw, self.seen, self.past, layer.weight.detach().cpu(), counts,
                                                    mean_shift=self.mean_shift)
        self.set_consolidated(layer)

    def set_consolidated(self, layer: nn.Linear) -> None:
        """Load the consolidated weights into ``layer`` (zero for classes never seen)."""
        with torch.no_grad():
            layer.weight.copy_(consolidated(self.cw, self.seen).to(layer.weight.device))

    def memory_report(self) -> dict[str, Number]:
        """``consolidated_bytes``: bytes of the consolidated rows and counts (empty before training starts)."""
        if self.cw is None:
            return {}
        return {"consolidated_bytes": tensors_bytes((self.cw, self.seen, self.past))}

    def state_dict(self) -> dict[str, Any]:
        return {"cw": None if self.cw is None else self.cw.clone(),
                "seen": None if self.seen is None else self.seen.clone(),
                "past": None if self.past is None else self.past.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cw = None if state["cw"] is None else state["cw"].clone()
        self.seen = None if state["seen"] is None else state["seen"].clone()
        self.past = None if state["past"] is None else state["past"].clone()


__all__ = ["CWRStarHead"]
