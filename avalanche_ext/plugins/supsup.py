"""Supermasks in Superposition (SupSup) as an Avalanche plugin."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from avalanche.evaluation.metric_results import MetricValue

from ..functional.entropy import normalized_entropy
from ..functional.supsup import binary_inference, exhaustive_inference, oneshot_inference
from ..models.supermask import SupSupNet
from .base import MethodPlugin, check_distinct_task_labels, experience_id, require_new_task, single_task_label

Mode = Literal["gg", "gns", "gnu"]


class SupSupPlugin(MethodPlugin[SupSupNet]):
    """Supermasks in Superposition: one binary mask per task over fixed random weights.

    Idea: the network's weights are random signed constants that are never trained; each
    task learns only which weights to keep (a supermask ``M_t``, from scores ``S_t`` with a
    straight-through gradient). When the task ends its mask is frozen and stored with one
    bit per weight, so every learned task keeps exactly its predictions (zero forgetting)
    at a cost of ``n_weights / 8`` bytes per task. Without a task label at test time the
    task is inferred: run the network with the superposed mask ``sum_i alpha_i M_i``,
    ``alpha_i = 1/k``, and pick the mask along which the output entropy falls fastest.

    Loss and inference:

    $$\\min_{S_t} \\; \\mathcal{L}\\big(f(x;\\, W \\odot M_t)\\big),\\quad
      M_t = \\mathbb{1}[S_t \\ge 0] \\ \\text{or}\\ \\mathbb{1}[|S_t| \\in \\text{top-}k],\\quad
      \\frac{\\partial M_t}{\\partial S_t} := 1$$

    $$\\hat t = \\arg\\min_i \\frac{\\partial}{\\partial \\alpha_i}
      \\mathcal{H}\\Big(f\\big(x;\\, W \\odot \\textstyle\\sum_j \\alpha_j M_j\\big)\\Big)
      \\Big|_{\\alpha_j = 1/k}$$

    (``inference="binary"``: repeat, keeping the better half of the masks each time;
    ``inference="exhaustive"``: run every mask and take the lowest entropy, the exact
    criterion the gradient approximates, at the cost of ``k`` forward passes.)

    Scenarios (``mode``):

    * ``"gg"``: task labels at train and test (task-incremental streams). The test batch's
      task label selects the mask.
    * ``"gns"``: task identity at train only; the task is inferred at test. With
      ``task_ids="labels"`` the experience's task label names the task; with
      ``task_ids="experiences"`` every training experience is a new task (domain- and
      class-incremental streams, whose experiences carry no task label).
    * ``"gnu"``: no task identity at all. Before an experience is trained, a probe of its
      data goes through one-shot inference; if the chosen mask is confident (mean
      normalised output entropy ``<= gnu_threshold``) the experience is recognised as
      that task and not trained again, otherwise a new mask is allocated.

    In ``gns`` and ``gnu`` modes the plugin answers ``inferred_tasks`` with the masks chosen
    for the last test mini-batch and the mask of its experience, so
    :func:`avalanche_ext.metrics.task_inference_metrics` measures the task-inference
    accuracy (share of test samples routed to the mask of their own task, over the
    experiences learned so far). The number of masks after each training experience is
    published as ``SupSup_Masks/train_phase``.

    The model must be a :class:`~avalanche_ext.models.supermask.SupSupNet`: convert your own
    network (Avalanche's ``SimpleMLP``, a ResNet, any ``nn.Module`` of linear, convolution,
    batch-norm and parameter-free modules; its ``forward`` is kept) with
    :func:`~avalanche_ext.models.supermask.build_supsup_network`. Its only parameters are
    the live scores of the task being learned; the plugin resets the optimizer's state at
    each new task. Frozen masks are buffers: weight decay and momentum cannot reach them.

    Paper: Mitchell Wortsman, Vivek Ramanujan, Rosanne Liu, Aniruddha Kembhavi, Mohammad
    Rastegari, Jason Yosinski, Ali Farhadi, "Supermasks in Superposition", NeurIPS 2020,
    https://arxiv.org/abs/2006.14769.

    Example:
        >>> from avalanche.training import Naive
        >>> from avalanche_ext.models import build_network, build_supsup_network
        >>> net = build_supsup_network(build_network((1, 8, 8), 10, hidden=100))
        >>> strategy = Naive(model=net, optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        ...                  criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32,
        ...                  plugins=[SupSupPlugin(mode="gns", task_ids="experiences")])
        >>> # for exp in stream.train_stream: strategy.train(exp); strategy.eval(stream.test_stream)

    Args:
        mode: ``"gg"``, ``"gns"`` or ``"gnu"`` (see above).
        task_ids: for ``gg``/``gns``, where the task identity comes from while training:
            ``"labels"`` (the experience's task label) or ``"experiences"`` (each training
            experience is a new task; ``gns`` only).
        inference: ``"oneshot"`` (one gradient), ``"binary"`` (``ceil(log2 k)`` gradients),
            ``"exhaustive"`` (``k`` forward passes; the one that works when tasks have
            disjoint label sets, as in class-incremental streams, where the one-shot
            gradient tends to favour one mask for every input) or ``"auto"``:
            ``exhaustive`` while no two learned masks' experiences share a class,
            ``oneshot`` otherwise (see :attr:`resolved_inference`).
        infer_per: infer a task per test ``"sample"`` or one per test ``"batch"`` (the
            paper's protocol; needs batches drawn from one task, as Avalanche's
            experience-by-experience evaluation provides).
        gnu_threshold: ``gnu`` only: largest mean normalised entropy (in ``[0, 1]``) at
            which an existing mask counts as confident.
        gnu_probe: ``gnu`` only: number of samples of a new experience used to decide.

    Raises:
        ValueError: a bad hyper-parameter; with ``task_ids="labels"`` (``gg``/``gns``), a
            stream whose experiences do not carry distinct task labels, found on the first
            experience, or an experience whose task label was learned already.
        IncompatibleModelError: the strategy's model is not a ``SupSupNet`` (before training).
    """

    model_type = SupSupNet
    model_hint = "convert the network with avalanche_ext.models.build_supsup_network(model) before building the strategy"

    def __init__(
        self,
        mode: Mode = "gns",
        *,
        task_ids: Literal["labels", "experiences"] = "labels",
        inference: Literal["auto", "oneshot", "binary", "exhaustive"] = "auto",
        infer_per: Literal["sample", "batch"] = "sample",
        gnu_threshold: float = 0.2,
        gnu_probe: int = 256,
    ):
        super().__init__()
        if mode not in ("gg", "gns", "gnu"):
            raise ValueError(f"mode must be 'gg', 'gns' or 'gnu', not {mode!r}")
        if task_ids not in ("labels", "experiences"):
            raise ValueError(f"task_ids must be 'labels' or 'experiences', not {task_ids!r}")
        if mode == "gg" and task_ids == "experiences":
            raise ValueError("mode 'gg' selects masks by the test task label, so task_ids must be 'labels'; "
                             "use mode='gns' to learn one mask per experience and infer the task at test")
        if inference not in ("auto", "oneshot", "binary", "exhaustive"):
            raise ValueError(f"inference must be 'auto', 'oneshot', 'binary' or 'exhaustive', not {inference!r}")
        if infer_per not in ("sample", "batch"):
            raise ValueError(f"infer_per must be 'sample' or 'batch', not {infer_per!r}")
        if not 0.0 < gnu_threshold < 1.0:
            raise ValueError(f"gnu_threshold must be in (0, 1), got {gnu_threshold}")
        if gnu_probe < 1:
            raise ValueError(f"gnu_probe must be >= 1, got {gnu_probe}")
        self.mode = mode
        self.task_ids = task_ids
        self.inference = inference
        self.infer_per = infer_per
        self.gnu_threshold = float(gnu_threshold)
        self.gnu_probe = int(gnu_probe)
        self.label_to_mask: dict[int, int] = {}
        self.exp_to_mask: dict[int, int] = {}
        self.gnu_entropy: dict[int, float] = {}
        #: mask slot -> the classes of the experiences it was trained on (what ``auto`` inference reads).
        self.mask_classes: dict[int, set[int]] = {}
        self._slot: Optional[int] = None
        self._checked = False
        self._inferred: Optional[tuple[torch.Tensor, int]] = None

    # ----- checks before any update --------------------------------------------------
    def _check_stream(self, experience: Any) -> None:
        if self.mode == "gnu" or self.task_ids == "experiences":
            return
        check_distinct_task_labels(
            experience, f"SupSup mode {self.mode!r} with task_ids='labels'",
            "; without task labels use mode='gns' with task_ids='experiences' (experience boundaries name the tasks "
            "while training, tasks are inferred at test), or mode='gnu'")

    # ----- training --------------------------------------------------------------------------
    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        experience = strategy.experience
        if not self._checked:
            self._check_stream(experience)
            self._checked = True
        exp_id = experience_id(experience)
        self._slot = None
        if self.mode == "gnu":
            known = self._recognise(strategy, model)
            if known is not None:
                self.exp_to_mask[exp_id] = known
                self.mask_classes.setdefault(known, set()).update(_classes_of(experience))
                model.use_task(known)
                strategy.stop_training()
                return
        elif self.task_ids == "labels":
            task = single_task_label(experience, "SupSup")
            require_new_task(task, self.label_to_mask, "SupSup", "; use mode='gnu' for streams that revisit tasks")
        slot = model.start_task()
        if self.mode != "gnu" and self.task_ids == "labels":
            self.label_to_mask[int(experience.task_labels[0])] = slot
        self.exp_to_mask[exp_id] = slot
        self.mask_classes[slot] = set(_classes_of(experience))
        self._slot = slot
        strategy.optimizer.state.clear()  # no moments carried over from the previous task's scores
        model.use_task(slot)

    def before_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self._slot is not None:
            strategy.model.use_task(self._slot)

    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        if self._slot is not None:
            model.freeze_task()
            self._slot = None
        evaluator = getattr(strategy, "evaluator", None)
        if evaluator is not None:  # how many masks the model holds now
            evaluator.publish_metric_value(MetricValue(self, "SupSup_Masks/train_phase", float(model.num_masks),
                                                       strategy.clock.train_iterations))

    @torch.no_grad()
    def _recognise(self, strategy: Any, model: SupSupNet) -> Optional[int]:
        """GNu: the learned mask that is confident on a probe of the experience, or ``None``."""
        if model.num_masks == 0:
            return None
        data = strategy.adapted_dataset if strategy.adapted_dataset is not None else strategy.experience.dataset
        n = len(data)
        idx = torch.linspace(0, n - 1, min(self.gnu_probe, n)).long().tolist()
        x = torch.stack([torch.as_tensor(data[i][0]) for i in idx]).to(strategy.device)
        was_training = model.training
        model.eval()
        try:
            candidate = int(self._infer(model, x, per_sample=False)[0])
            h = float(normalized_entropy(model(x, task=candidate)).mean())
        finally:
            model.train(was_training)
        self.gnu_entropy[int(strategy.clock.train_exp_counter)] = h
        return candidate if h <= self.gnu_threshold else None

    # ----- evaluation ------------------------------------------------------------------------
    @property
    def resolved_inference(self) -> str:
        """The inference in use: ``inference`` itself, or for ``"auto"`` ``"exhaustive"`` while the
        learned masks' experiences have pairwise disjoint classes (a class-incremental split, on
        which the one-shot gradient sends nearly every input to one mask), else ``"oneshot"``."""
        if self.inference != "auto":
            return self.inference
        seen: set[int] = set()
        for classes in self.mask_classes.values():
            if not classes or seen & classes:  # unknown classes: the paper's one-shot inference
                return "oneshot"
            seen |= classes
        return "exhaustive"

    def _infer(self, model: SupSupNet, x: torch.Tensor, per_sample: Optional[bool] = None) -> torch.Tensor:
        per_sample = self.infer_per == "sample" if per_sample is None else per_sample
        k = model.num_masks
        if k == 1:
            return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        inference = self.resolved_inference
        if inference == "exhaustive":
            with torch.no_grad():
                return exhaustive_inference(lambda i: model(x, task=i), k, per_sample)

        def superpose(alphas: torch.Tensor) -> torch.Tensor:
            return model.superpose(x, alphas)

        if inference == "binary":
            return binary_inference(superpose, k, x.shape[0], per_sample, device=x.device)
        return oneshot_inference(superpose, k, x.shape[0], per_sample, device=x.device)[0]

    def before_eval_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        self._inferred = None
        if self.mode == "gg":
            task_ids = strategy.mb_task_id
            lut = torch.full((int(task_ids.max()) + 1,), model.num_masks, dtype=torch.long, device=task_ids.device)
            for label, slot in self.label_to_mask.items():
                if label < len(lut) and slot < model.num_masks:
                    lut[label] = slot
            model.use_task(lut[task_ids])
            return
        tasks = self.route_batch(model, strategy.mb_x)
        truth = self._truth(strategy, model)
        if tasks is not None and truth is not None:
            self._inferred = (tasks, truth)

    def route_batch(self, model: SupSupNet, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Infer the mask of every input of ``x`` (no task labels) and route ``model`` through it.

        What evaluation does before each forward pass; a logged model that classifies without
        task labels calls it too (:class:`avalanche_ext.runner.model_export.ClassPredictor`).

        Returns:
            the inferred mask slots, or None while no mask is frozen (the live slot is used).
        """
        if model.num_masks == 0:
            model.use_task(model.num_masks)
            return None
        with torch.enable_grad():
            tasks = self._infer(model, x)
        model.use_task(tasks)
        return tasks

    def _truth(self, strategy: Any, model: SupSupNet) -> Optional[int]:
        if self.mode == "gns" and self.task_ids == "labels":
            labels = strategy.mb_task_id.unique().tolist()
            slot = self.label_to_mask.get(int(labels[0])) if len(labels) == 1 else None
        else:
            slot = self.exp_to_mask.get(experience_id(strategy.experience))
        return slot if slot is not None and slot < model.num_masks else None

    def inferred_tasks(self, experience: Any) -> Optional[tuple[torch.Tensor, int]]:
        """The masks inferred for the last test mini-batch and the mask of its task (``gns``/``gnu``)."""
        return self._inferred

    # ----- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The plugin's bookkeeping (the masks live in the model's own ``state_dict``)."""
        return {
            "mode": self.mode,
            "task_ids": self.task_ids,
            "label_to_mask": dict(self.label_to_mask),
            "exp_to_mask": dict(self.exp_to_mask),
            "gnu_entropy": dict(self.gnu_entropy),
            "mask_classes": {k: sorted(v) for k, v in self.mask_classes.items()},
            "checked": self._checked,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the mode and task-id source must match."""
        if state["mode"] != self.mode or state["task_ids"] != self.task_ids:
            raise ValueError(f"state of a SupSupPlugin(mode={state['mode']!r}, task_ids={state['task_ids']!r}) "
                             f"cannot be loaded into mode={self.mode!r}, task_ids={self.task_ids!r}")
        self.label_to_mask = {int(k): int(v) for k, v in state["label_to_mask"].items()}
        self.exp_to_mask = {int(k): int(v) for k, v in state["exp_to_mask"].items()}
        self.gnu_entropy = {int(k): float(v) for k, v in state["gnu_entropy"].items()}
        self.mask_classes = {int(k): {int(c) for c in v} for k, v in state.get("mask_classes", {}).items()}
        self._checked = bool(state["checked"])
        self._slot = None


def _classes_of(experience: Any) -> list[int]:
    return [int(c) for c in getattr(experience, "classes_in_this_experience", None) or ()]


__all__ = ["SupSupPlugin"]
