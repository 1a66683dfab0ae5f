"""Supermasks in Superposition (SupSup) as an Avalanche plugin."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metric_results import MetricValue

from ..functional.supsup import binary_inference, exhaustive_inference, normalized_entropy, oneshot_inference
from ..models.supermask import SupSupNet

Mode = Literal["gg", "gns", "gnu"]


class SupSupPlugin(SupervisedPlugin):
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

    The task-inference accuracy (share of test samples routed to the mask of their own
    task, over the experiences learned so far) is published as the metrics
    ``TaskInference_Acc_Exp/eval_phase/<stream>/ExpNNN`` and
    ``TaskInference_Acc_Stream/eval_phase/<stream>``; the last value is
    :attr:`last_task_inference_acc`. The number of masks after each training experience
    is published as ``SupSup_Masks/train_phase``.

    The model must be a :class:`~avalanche_ext.models.supermask.SupSupNet` (build it with
    :func:`~avalanche_ext.models.supermask.build_supsup_network`). Its only parameters are
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
        inference: ``"oneshot"`` (one gradient), ``"binary"`` (``ceil(log2 k)`` gradients) or
            ``"exhaustive"`` (``k`` forward passes; the one that works when tasks have
            disjoint label sets, as in class-incremental streams, where the one-shot
            gradient tends to favour one mask for every input).
        infer_per: infer a task per test ``"sample"`` or one per test ``"batch"`` (the
            paper's protocol; needs batches drawn from one task, as Avalanche's
            experience-by-experience evaluation provides).
        gnu_threshold: ``gnu`` only: largest mean normalised entropy (in ``[0, 1]``) at
            which an existing mask counts as confident.
        gnu_probe: ``gnu`` only: number of samples of a new experience used to decide.
    """

    def __init__(
        self,
        mode: Mode = "gns",
        *,
        task_ids: Literal["labels", "experiences"] = "labels",
        inference: Literal["oneshot", "binary", "exhaustive"] = "oneshot",
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
        if inference not in ("oneshot", "binary", "exhaustive"):
            raise ValueError(f"inference must be 'oneshot', 'binary' or 'exhaustive', not {inference!r}")
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
        self.inference_history: list[tuple[int, float]] = []
        self.last_task_inference_acc: Optional[float] = None
        self._slot: Optional[int] = None
        self._checked = False
        self._eval_counts: dict[int, list[int]] = {}

    # ----- checks before any update --------------------------------------------------
    @staticmethod
    def _model(strategy: Any) -> SupSupNet:
        model = strategy.model
        if not isinstance(model, SupSupNet):
            raise TypeError(
                f"SupSupPlugin needs a SupSupNet model, got {type(model).__name__}; convert the network with "
                "avalanche_ext.models.build_supsup_network(model) before building the strategy")
        return model

    def _check_stream(self, experience: Any) -> None:
        if self.mode == "gnu" or self.task_ids == "experiences":
            return
        try:
            labels = [tuple(e.task_labels) for e in experience.origin_stream]
        except Exception:  # a stream without the information: the per-experience check still applies
            return
        if len(labels) > 1 and len(set(labels)) == 1:
            raise ValueError(
                f"SupSup mode {self.mode!r} with task_ids='labels' needs a task label per experience, but every "
                f"experience of this stream has task label(s) {list(labels[0])}: the scenario has no task labels. "
                "Use a task-incremental scenario (--scenario task), or mode='gns' with task_ids='experiences' "
                "(experience boundaries name the tasks while training, tasks are inferred at test), or mode='gnu'")

    # ----- training --------------------------------------------------------------------------
    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        experience = strategy.experience
        if not self._checked:
            self._check_stream(experience)
            self._checked = True
        exp_id = self._experience_id(experience, strategy)
        self._slot = None
        if self.mode == "gnu":
            known = self._recognise(strategy, model)
            if known is not None:
                self.exp_to_mask[exp_id] = known
                model.use_task(known)
                strategy.stop_training()
                return
        elif self.task_ids == "labels":
            labels = sorted(set(int(t) for t in experience.task_labels))
            if len(labels) != 1:
                raise ValueError(f"SupSup learns one mask per experience; this experience mixes task labels {labels}")
            if labels[0] in self.label_to_mask:
                raise ValueError(
                    f"task label {labels[0]} was already learned and its mask is frozen; SupSup cannot train it "
                    "again without changing its predictions (use mode='gnu' for streams that revisit tasks)")
        slot = model.start_task()
        if self.mode != "gnu" and self.task_ids == "labels":
            self.label_to_mask[int(experience.task_labels[0])] = slot
        self.exp_to_mask[exp_id] = slot
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
        self._publish(strategy, "SupSup_Masks/train_phase", float(model.num_masks))

    @staticmethod
    def _experience_id(experience: Any, strategy: Any) -> int:
        # Only used to name experiences in exp_to_mask (for the task-inference metric).
        try:
            return int(experience.logging().current_experience)
        except Exception:
            return int(strategy.clock.train_exp_counter)

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
    def _infer(self, model: SupSupNet, x: torch.Tensor, per_sample: Optional[bool] = None) -> torch.Tensor:
        per_sample = self.infer_per == "sample" if per_sample is None else per_sample
        k = model.num_masks
        if k == 1:
            return torch.zeros(x.shape[0], dtype=torch.long)
        if self.inference == "exhaustive":
            with torch.no_grad():
                return exhaustive_inference(lambda i: model(x, task=i), k, per_sample).cpu()

        def superpose(alphas: torch.Tensor) -> torch.Tensor:
            return model.superpose(x, alphas.to(x.device))

        if self.inference == "binary":
            return binary_inference(superpose, k, x.shape[0], per_sample)
        return oneshot_inference(superpose, k, x.shape[0], per_sample)[0]

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._eval_counts = {}

    def before_eval_forward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        model = self._model(strategy)
        if self.mode == "gg":
            lut = torch.full((int(strategy.mb_task_id.max()) + 1,), model.num_masks, dtype=torch.long)
            for label, slot in self.label_to_mask.items():
                if label < len(lut) and slot < model.num_masks:
                    lut[label] = slot
            model.use_task(lut[strategy.mb_task_id.cpu()])
            return
        if model.num_masks == 0:
            model.use_task(model.num_masks)
            return
        with torch.enable_grad():
            tasks = self._infer(model, strategy.mb_x)
        truth = self._truth(strategy, model)
        if truth is not None:
            e = self._experience_id(strategy.experience, strategy)
            counts = self._eval_counts.setdefault(e, [0, 0])
            counts[0] += int((tasks == truth).sum())
            counts[1] += len(tasks)
        model.use_task(tasks)

    def _truth(self, strategy: Any, model: SupSupNet) -> Optional[int]:
        if self.mode == "gns" and self.task_ids == "labels":
            labels = strategy.mb_task_id.unique().tolist()
            slot = self.label_to_mask.get(int(labels[0])) if len(labels) == 1 else None
        else:
            slot = self.exp_to_mask.get(self._experience_id(strategy.experience, strategy))
        return slot if slot is not None and slot < model.num_masks else None

    def _publish(self, strategy: Any, name: str, value: float) -> None:
        evaluator = getattr(strategy, "evaluator", None)
        if evaluator is not None:
            evaluator.publish_metric_value(MetricValue(self, name, value, strategy.clock.train_iterations))

    def _stream_name(self, strategy: Any) -> str:
        try:
            return f"{strategy.experience.origin_stream.name}_stream"
        except Exception:
            return "eval_stream"

    def after_eval_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        e = self._experience_id(strategy.experience, strategy)
        if e in self._eval_counts:
            correct, total = self._eval_counts[e]
            self._publish(strategy, f"TaskInference_Acc_Exp/eval_phase/{self._stream_name(strategy)}/Exp{e:03d}",
                          correct / max(total, 1))
            self._last_stream = self._stream_name(strategy)

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if not self._eval_counts:
            return
        correct = sum(c for c, _ in self._eval_counts.values())
        total = sum(t for _, t in self._eval_counts.values())
        self.last_task_inference_acc = correct / max(total, 1)
        self.inference_history.append((int(strategy.clock.train_exp_counter), self.last_task_inference_acc))
        stream = getattr(self, "_last_stream", "eval_stream")
        self._publish(strategy, f"TaskInference_Acc_Stream/eval_phase/{stream}", self.last_task_inference_acc)

    # ----- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The plugin's bookkeeping (the masks live in the model's own ``state_dict``)."""
        return {
            "mode": self.mode,
            "task_ids": self.task_ids,
            "label_to_mask": dict(self.label_to_mask),
            "exp_to_mask": dict(self.exp_to_mask),
            "gnu_entropy": dict(self.gnu_entropy),
            "inference_history": list(self.inference_history),
            "last_task_inference_acc": self.last_task_inference_acc,
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
        self.inference_history = [(int(a), float(b)) for a, b in state["inference_history"]]
        self.last_task_inference_acc = state["last_task_inference_acc"]
        self._checked = bool(state["checked"])
        self._slot = None


__all__ = ["SupSupPlugin"]
