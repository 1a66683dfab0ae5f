"""Hard Attention to the Task (HAT) as an Avalanche plugin."""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..functional.hat import anneal_s, attention_regularizer, compensate_embedding_grad
from ..models.layers.hat import HATModule
from .base import MethodPlugin, check_distinct_task_labels, require_new_task, single_task_label


def check_optimizer(net: HATModule, optimizer: torch.optim.Optimizer) -> None:
    """Raise ``ValueError`` if ``optimizer`` could move weights that HAT protects.

    HAT protects a weight by zeroing its gradient. Momentum (its buffer outlives the
    task: Avalanche keeps optimizer state across experiences), weight decay (added
    inside ``step``) and adaptive optimizers such as Adam (they rescale a damped
    gradient back to a full step, and carry moments over) would still move it. So the
    shared gated layers must be optimized by plain ``torch.optim.SGD`` with
    ``momentum=0`` and ``weight_decay=0``. Embeddings and heads of other tasks get no
    gradient at all (``grad is None``), which every optimizer skips.
    """
    protected = {id(p): n for n, p in net.protected_parameters().items()}
    for group in optimizer.param_groups:
        names = [protected[id(p)] for p in group["params"] if id(p) in protected]
        if not names:
            continue
        if type(optimizer) is not torch.optim.SGD:
            raise ValueError(
                f"HAT masks gradients, and {type(optimizer).__name__} would still move protected weights "
                f"({names[0]}, ...): use torch.optim.SGD(params, lr=..., momentum=0, weight_decay=0)"
            )
        bad = {k: group.get(k, 0) for k in ("momentum", "weight_decay") if group.get(k, 0)}
        if bad:
            raise ValueError(
                f"HAT needs plain SGD on the shared layers, but the optimizer has "
                f"{', '.join(f'{k}={v}' for k, v in bad.items())}: momentum buffers and weight decay move weights "
                "whose gradient HAT has zeroed. Use momentum=0 and weight_decay=0."
            )


class HATPlugin(MethodPlugin[HATModule]):
    """Hard Attention to the Task: per-task gates over units, and gradients masked by them.

    Each task $t$ learns, for every gated layer $l$ of a :class:`~avalanche_ext.models.hat.HATModule`
    (a stack :class:`~avalanche_ext.models.hat.HATNet` or the residual
    :class:`~avalanche_ext.models.hat.HATResNet`),
    an embedding $e^l_t$ and uses the attention $a^l_t = \\sigma(s\\, e^l_t)$ to gate the
    layer's units. Within each epoch $s$ is annealed from $1/s_{max}$ (soft gates, so the
    embeddings learn) to $s_{max}$ (near-binary gates). After a task, its attention at
    $s_{max}$ is merged into the cumulative attention $a_{\\le t} = \\max(a_{\\le t-1}, a_t)$.
    While learning a later task, the gradient of a weight $w^l_{ij}$ connecting unit $j$ of
    layer $l-1$ to unit $i$ of layer $l$ is multiplied by
    $1 - \\min(a^l_{\\le t-1, i}, a^{l-1}_{\\le t-1, j})$, so the units earlier tasks rely on
    keep their incoming weights. The loss adds an attention-sparsity regularizer:

    $$\\mathcal{L} = \\mathrm{CE} + c\\,\\frac{\\sum_l \\sum_i a^l_{t,i}(1 - a^l_{<t,i})}{\\sum_l \\sum_i (1 - a^l_{<t,i})}$$

    The gradient of $e_t$ is multiplied by $\\frac{s_{max}[\\cosh(s e_t) + 1]}{s[\\cosh(e_t)+1]}$
    (compensation for the annealing), all gradients are clipped to norm ``clip_grad``, and
    after each step $e_t$ is clamped to ``[-thres_emb, thres_emb]``.

    Paper: Serrà, Surís, Miron, Karatzoglou, *Overcoming catastrophic forgetting with hard
    attention to the task*, ICML 2018, [arXiv:1801.01423](https://arxiv.org/abs/1801.01423).

    Scenarios: task-IL only (the task label picks the embedding and the head); each
    experience must carry one task label not trained before.

    On a network with batch norm per task (:class:`~avalanche_ext.models.hat.HATResNet`),
    the end of each experience sets the task's norm statistics from one pass over its
    training data at $s_{max}$ (:meth:`~avalanche_ext.models.layers.hat.HATModule.recalibrate_norms`):
    the statistics gathered while $s$ was annealed describe soft gates, not the
    near-binary ones evaluation uses.

    The optimizer must be plain SGD on the shared layers (see :func:`check_optimizer`);
    others are rejected before any update.

    Example:
        >>> model = build_hat_network(stream.input_shape, stream.n_outputs)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.05)
        >>> strategy = Naive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
        ...                  plugins=[HATPlugin(c=0.75)])
        >>> for exp in stream.train_stream:
        ...     strategy.train(exp)

    Args:
        c: weight of the attention-sparsity regularizer (paper: 0.75).
        thres_cosh: clamp of $s\\,e$ inside ``cosh`` in the compensation (paper code: 50).
        thres_emb: embeddings are clamped to ``[-thres_emb, thres_emb]`` (paper code: 6).
        clip_grad: gradient-norm clipping, ``None`` for none (paper code: 10000).

    Attributes:
        cumulative: the cumulative attention $a_{\\le t}$, one vector per gated layer, or
            ``None`` before the first task.
        trained_tasks: the task labels learned so far, in order.
        capacity: after each task, the fraction of shared weights the learned tasks hold
            (mean of $\\min(a^l_{\\le t,i}, a^{l-1}_{\\le t,j})$ over all shared parameters).
        last_regularizer: the value of the regularizer at the last training iteration.

    Raises:
        ValueError: a bad hyper-parameter; before any update, an optimizer that would move
            protected weights, or an experience without exactly one new task label.
        IncompatibleModelError: the strategy's model is not a ``HATModule`` (before training).
    """

    model_type = HATModule
    model_hint = ("build one with avalanche_ext.models.build_hat_network(input_shape, n_outputs, arch='mlp'|'cnn'|"
                  "'resnet18'), or gate your own layers with HATNet(layers, n_outputs)")

    def __init__(
        self,
        c: float = 0.75,
        *,
        thres_cosh: float = 50.0,
        thres_emb: float = 6.0,
        clip_grad: Optional[float] = 10000.0,
    ) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        if thres_cosh <= 0:
            raise ValueError(f"thres_cosh must be > 0, got {thres_cosh}")
        if thres_emb <= 0:
            raise ValueError(f"thres_emb must be > 0, got {thres_emb}")
        if clip_grad is not None and clip_grad <= 0:
            raise ValueError(f"clip_grad must be > 0 or None, got {clip_grad}")
        self.c = float(c)
        self.thres_cosh = float(thres_cosh)
        self.thres_emb = float(thres_emb)
        self.clip_grad = clip_grad
        self.cumulative: Optional[list[torch.Tensor]] = None
        self.trained_tasks: list[int] = []
        self.capacity: list[float] = []
        self.last_regularizer: Optional[float] = None
        self._task: Optional[int] = None
        self._grad_masks: Optional[dict[str, torch.Tensor]] = None
        self._n_batches = 1

    # ---- checks, before any update ----------------------------------------------------
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        check_optimizer(self._model(strategy), strategy.optimizer)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        net = self._model(strategy)
        exp = strategy.experience
        task = single_task_label(exp, "HAT")
        if not self.trained_tasks:
            check_distinct_task_labels(exp, "HAT")
        require_new_task(task, self.trained_tasks, "HAT")
        classes = list(exp.classes_in_this_experience)
        if classes and max(classes) >= net.n_outputs:
            raise ValueError(
                f"experience classes {classes} do not fit a head of {net.n_outputs} units: build the "
                f"network with n_outputs={max(classes) + 1} (enough for the largest class id), or number "
                "each task's classes from 0 (class_ids_from_zero_in_each_exp=True in Avalanche's builders)"
            )
        check_optimizer(net, strategy.optimizer)
        self._task = task
        net.last_gates.clear()
        self._move_cumulative(strategy.device)
        if self.cumulative is None:
            self._grad_masks = None
        else:
            self._grad_masks = {n: 1.0 - m for n, m in net.parameter_masks(self.cumulative).items()}

    # ---- training ------------------------------------------------------------------------
    def before_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        try:
            self._n_batches = len(strategy.dataloader)
        except TypeError:
            n = len(strategy.adapted_dataset)
            self._n_batches = -(-n // strategy.train_mb_size)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        net = self._model(strategy)
        net.s = anneal_s(strategy.clock.train_epoch_iterations, self._n_batches, net.s_max)

    def before_backward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.c == 0:
            return
        gates = self._model(strategy).last_gates[self._task]
        reg = attention_regularizer(gates, self.cumulative)
        self.last_regularizer = float(reg.detach())
        strategy.loss = strategy.loss + self.c * reg

    def after_backward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        net = self._model(strategy)
        with torch.no_grad():
            if self._grad_masks is not None:
                for name, p in net.protected_parameters().items():
                    if p.grad is not None:
                        p.grad.mul_(self._grad_masks[name])
            for e in net.task_embeddings(self._task):
                if e.grad is not None:
                    e.grad.copy_(compensate_embedding_grad(e.grad, e, net.s, net.s_max, self.thres_cosh))
        if self.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.clip_grad)

    def after_update(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        with torch.no_grad():
            for e in self._model(strategy).task_embeddings(self._task):
                e.clamp_(-self.thres_emb, self.thres_emb)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        net = self._model(strategy)
        # per-task batch norm (if any): statistics of the gates evaluation uses; a no-op without norms
        net.recalibrate_norms(self._task, (mb[0].to(strategy.device) for mb in strategy.dataloader))
        self.consolidate(net, self._task)
        net.s = net.s_max
        net.last_gates.clear()
        self._task, self._grad_masks = None, None

    # ---- the cumulative attention -------------------------------------------------------
    def consolidate(self, net: HATModule, task: int) -> None:
        """Merge ``task``'s attention at ``s_max`` into :attr:`cumulative` and record it learned."""
        with torch.no_grad():
            gates = [g.detach().clone() for g in net.gates(task, net.s_max)]
            self._move_cumulative(gates[0].device)
            if self.cumulative is None:
                self.cumulative = gates
            else:
                self.cumulative = [torch.maximum(a, g) for a, g in zip(self.cumulative, gates)]
            masks = net.parameter_masks(self.cumulative)
            held = sum(float(m.sum()) for m in masks.values())
            total = sum(m.numel() for m in masks.values())
        if int(task) in self.trained_tasks:  # re-consolidating a task updates its entry
            self.capacity[self.trained_tasks.index(int(task))] = held / total
        else:
            self.trained_tasks.append(int(task))
            self.capacity.append(held / total)

    def _move_cumulative(self, device: Any) -> None:
        # A restored state stays where it was loaded (often the CPU) until the next hook that uses it.
        if self.cumulative is not None:
            self.cumulative = [a.to(device) for a in self.cumulative]

    # ---- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The cumulative attention and the learned tasks (tensors are copied)."""
        return {
            "cumulative": None if self.cumulative is None else [a.clone() for a in self.cumulative],
            "trained_tasks": list(self.trained_tasks),
            "capacity": list(self.capacity),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        The attention stays on the device it was loaded to; the next experience (or
        :meth:`consolidate`) moves it to the strategy's (the network's) device.
        """
        cum = state["cumulative"]
        self.cumulative = None if cum is None else [torch.as_tensor(a).clone() for a in cum]
        self.trained_tasks = [int(t) for t in state["trained_tasks"]]
        self.capacity = [float(x) for x in state.get("capacity", [])]


__all__ = ["HATPlugin", "check_optimizer"]
