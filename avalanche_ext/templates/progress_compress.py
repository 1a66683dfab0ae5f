"""Progress & Compress (Schwarz et al., ICML 2018) as an Avalanche training template.

Each experience is learned in two phases. **Progress**: the active column (AC) and its
lateral adaptors learn the task with the usual loss while the knowledge base (KB) is
frozen and only read through the adaptors. **Compress**: the KB learns to reproduce the
AC on the same data, held back by online EWC; the AC is then re-initialised and the KB's
Fisher information and parameters are consolidated. The KB is the model that is
evaluated, so the network size stays constant however many tasks arrive.

$$
\\text{progress:}\\quad \\min_{\\theta^{AC}, \\text{adaptors}}\\;
    \\mathbb{E}_{(x, y)}\\, \\ell\\big(f^{AC}(x; \\theta^{KB}), y\\big)
$$

$$
\\text{compress:}\\quad \\min_{\\theta^{KB}}\\;
    \\mathbb{E}_x\\, \\mathrm{KL}\\big(\\pi^{AC}(\\cdot \\mid x) \\,\\|\\, \\pi^{KB}(\\cdot \\mid x)\\big)
    + \\tfrac{\\lambda}{2} \\sum_i F^*_i (\\theta^{KB}_i - \\theta^*_i)^2
$$

$$
\\text{after the task:}\\quad F^* \\leftarrow \\gamma F^* + \\operatorname{norm}(F_t),\\;
    \\theta^* \\leftarrow \\theta^{KB},\\; \\theta^{AC} \\leftarrow \\text{random}
$$

Why a template and not a plugin: the phases change what the training loop does, not only
what it adds. Each phase trains a different set of parameters with its own optimizer, and
the compress loss *replaces* the task loss (it is not a penalty added to it). Overriding
``_train_exp``, ``forward`` and ``criterion`` does this in one readable place; everything
else (data loading, plugins, metrics, periodic evaluation) is Avalanche's.

Phases are visible to metrics and loggers: at the end of every epoch the template
publishes ``PnC_Loss_Epoch/<phase>_phase/train_stream`` (and, in the compress phase,
``PnC_KL_Epoch/...`` and ``PnC_EWC_Epoch/...``) through the evaluator, and after every
experience ``PnC_Epochs/<phase>_phase/train_stream``; the attributes ``phase``,
``phase_epoch`` and ``phase_log`` hold the same information.

Paper: Schwarz, Luketina, Czarnecki, Grabska-Barwinska, Teh, Pascanu, Hadsell,
*Progress & Compress: A scalable framework for continual learning*, ICML 2018,
https://arxiv.org/abs/1805.06370.

Scenarios: task-IL with a multi-head column (one head per task label), domain-IL and
class-IL with a single-head column.

Example:
    >>> from avalanche_ext.models import build_network
    >>> from avalanche_ext.models.progress_compress import ProgressCompressNet
    >>> net = ProgressCompressNet(build_network((1, 8, 8), 2, hidden=64, multihead=True))
    >>> strategy = ProgressCompress(model=net, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
    ...                             progress_epochs=2, compress_epochs=1, ewc_lambda=100.0, gamma=0.9,
    ...                             train_mb_size=32, evaluator=None)
    >>> # for exp in benchmark.train_stream: strategy.train(exp); strategy.eval(benchmark.test_stream)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from avalanche.evaluation.metric_results import MetricValue
from avalanche.training.templates import SupervisedTemplate
from torch.nn import CrossEntropyLoss
from torch.utils.data import DataLoader

from ..functional.online_ewc import NORMALIZATIONS, OnlineEWC, empirical_fisher
from ..functional.progress_compress import compress_loss
from ..models.progress_compress import ProgressCompressNet
from ..plugins.base import check_model

PHASES = ("progress", "compress")


class ProgressCompress(SupervisedTemplate):
    """Progress & Compress: train an active column, distil it into a knowledge base, reset it.

    Args:
        model: a ``avalanche_ext.models.progress_compress.ProgressCompressNet``
            wrapping the user's column network.
        optimizer: an optimizer instance; its class and settings (``defaults``) are reused to
            build a fresh optimizer over the parameters of each phase.
        progress_epochs: epochs of the progress phase per experience (>= 1).
        compress_epochs: epochs of the compress phase per experience (>= 1).
        ewc_lambda: weight $\\lambda$ of the online-EWC penalty on the KB (>= 0).
        gamma: decay $\\gamma$ of the running Fisher, in ``[0, 1]``.
        normalize: normalisation of each task's Fisher: ``"max"``, ``"mean"`` or ``"none"``.
        fisher_samples: samples of the experience used for the Fisher (``None``: all).
        reset_adaptors: also re-initialise the lateral adaptors after each task (by default
            they are kept: they describe how to read the KB, which persists).
        criterion: loss of the progress phase (cross-entropy by default).
        **kwargs: the other ``avalanche.training.templates.SupervisedTemplate``
            arguments (``train_mb_size``, ``eval_mb_size``, ``device``, ``plugins``,
            ``evaluator``, ``eval_every``...). ``train_epochs`` is not accepted: it is
            ``progress_epochs + compress_epochs``.

    Raises:
        IncompatibleModelError: ``model`` is not a ``ProgressCompressNet`` (a ``TypeError``).
        TypeError: ``optimizer`` is not an optimizer.
        ValueError: a hyper-parameter out of range, or ``train_epochs`` given.
    """

    def __init__(
        self,
        *,
        model: ProgressCompressNet,
        optimizer: torch.optim.Optimizer,
        progress_epochs: int = 1,
        compress_epochs: int = 1,
        ewc_lambda: float = 100.0,
        gamma: float = 1.0,
        normalize: str = "max",
        fisher_samples: Optional[int] = None,
        reset_adaptors: bool = False,
        criterion: Any = None,
        **kwargs: Any,
    ):
        check_model(model, ProgressCompressNet, "ProgressCompress",
                    "wrap your column: avalanche_ext.models.ProgressCompressNet(column)")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if "train_epochs" in kwargs:
            raise ValueError(
                "ProgressCompress sets train_epochs = progress_epochs + compress_epochs; "
                "pass progress_epochs and compress_epochs instead of train_epochs"
            )
        for name, value in (("progress_epochs", progress_epochs), ("compress_epochs", compress_epochs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not ewc_lambda >= 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {ewc_lambda}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if fisher_samples is not None and fisher_samples < 1:
            raise ValueError(f"fisher_samples must be >= 1 or None, got {fisher_samples}")
        self._optimizer_class = type(optimizer)
        self._optimizer_defaults = dict(optimizer.defaults)
        try:  # fail now, not at the first phase, if the optimizer cannot be rebuilt
            self._optimizer_class([torch.nn.Parameter(torch.zeros(1))], **self._optimizer_defaults)
        except Exception as e:  # noqa: BLE001 - any constructor error means the same thing
            raise ValueError(
                f"cannot rebuild a {self._optimizer_class.__name__} from its defaults ({e}); "
                "pass a standard torch optimizer"
            ) from e
        super().__init__(
            model=model,
            optimizer=optimizer,
            criterion=criterion if criterion is not None else CrossEntropyLoss(),
            train_epochs=progress_epochs + compress_epochs,
            **kwargs,
        )
        self.progress_epochs = progress_epochs
        self.compress_epochs = compress_epochs
        self.ewc_lambda = float(ewc_lambda)
        self.fisher_samples = fisher_samples
        self.reset_adaptors = reset_adaptors
        self.ewc = OnlineEWC(gamma=gamma, normalize=normalize)
        self.phase: Optional[str] = None
        """``"progress"``, ``"compress"`` or ``None`` outside training."""
        self.phase_epoch = 0
        """Epoch within the current phase (from 0)."""
        self.phase_log: list[dict[str, Any]] = []
        """One record per epoch: experience, phase, epoch, loss, kl, ewc."""
        self.tasks_seen = 0
        self._teacher: Optional[torch.Tensor] = None
        self._sums: dict[str, float] = {}

    # ----- phases -------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        return self.ewc.gamma

    @property
    def normalize(self) -> str:
        return self.ewc.normalize

    def make_optimizer(self, **kwargs: Any) -> None:
        """Nothing to do here: each phase builds its own optimizer (see ``_enter_phase``)."""

    def _enter_phase(self, phase: str) -> None:
        net: ProgressCompressNet = self.model
        self.phase = phase
        progress = phase == "progress"
        for p in net.kb_parameters():
            p.requires_grad_(not progress)
        for p in net.progress_parameters():
            p.requires_grad_(progress)
        net.train()
        if not progress:
            net.ac.eval()  # the teacher's targets without dropout noise
        params = list(net.progress_parameters() if progress else net.kb_parameters())
        self.optimizer = self._optimizer_class(params, **self._optimizer_defaults)

    def _train_exp(self, experience: Any, eval_streams: Optional[Sequence] = None, **kwargs: Any) -> None:
        net: ProgressCompressNet = self.model
        net.attach_adaptors()
        self.ewc.to(self.device)  # a restored state stays where it was loaded until now
        epochs = {}
        for phase, n_epochs in (("progress", self.progress_epochs), ("compress", self.compress_epochs)):
            self._enter_phase(phase)
            epochs[phase] = 0
            for self.phase_epoch in range(n_epochs):
                self._before_training_epoch(**kwargs)
                if self._stop_training:  # early stopping ends the phase
                    self._stop_training = False
                    break
                self._sums = {"n": 0.0, "loss": 0.0, "kl": 0.0, "ewc": 0.0}
                self.training_epoch(**kwargs)
                epochs[phase] += 1
                self._publish_epoch()
                self._after_training_epoch(**kwargs)
        self._consolidate()
        for phase, n in epochs.items():
            self._publish(f"PnC_Epochs/{phase}_phase/train_stream", n, self.clock.train_exp_counter)

    def _consolidate(self) -> None:
        """After the compress phase: online-EWC update of the KB, then reset the AC."""
        net: ProgressCompressNet = self.model
        for p in net.parameters():
            p.requires_grad_(True)
        data = self.experience.dataset.eval()
        loader = DataLoader(data, batch_size=self.train_mb_size, shuffle=self.fisher_samples is not None)
        fisher = empirical_fisher(net.kb, loader, max_samples=self.fisher_samples, device=self.device)
        self.ewc.consolidate(net.kb, fisher)
        net.reset_active_column(adaptors=self.reset_adaptors)
        self.tasks_seen += 1
        self.phase = None
        self.optimizer = self._optimizer_class(list(net.parameters()), **self._optimizer_defaults)

    # ----- forward and loss -----------------------------------------------------------
    def forward(self) -> torch.Tensor:
        """The AC's output in the progress phase, the KB's otherwise (compress: the AC's is kept as target)."""
        net: ProgressCompressNet = self.model
        if not self.is_training or self.phase is None:
            with net.use("kb"):
                return super().forward()
        if self.phase == "progress":
            with net.use("ac"):
                return super().forward()
        with torch.no_grad(), net.use("ac"):
            self._teacher = super().forward()
        with net.use("kb"):
            return super().forward()

    def criterion(self) -> torch.Tensor:
        """Task loss, except in the compress phase: KL(AC || KB) + lambda * online-EWC penalty on the KB."""
        if not (self.is_training and self.phase == "compress"):
            loss = self._criterion(self.mb_output, self.mb_y)
            if self.is_training:
                self._accumulate(loss, None, None)
            return loss
        net: ProgressCompressNet = self.model
        loss, kl, penalty = compress_loss(self._teacher, self.mb_output, net.kb.named_parameters(), self.ewc,
                                          self.ewc_lambda)
        self._accumulate(loss, kl, penalty)
        return loss

    # ----- phase metrics ---------------------------------------------------------------
    def _accumulate(self, loss: torch.Tensor, kl: Optional[torch.Tensor], penalty: Optional[torch.Tensor]) -> None:
        n = float(self.mb_x.shape[0])
        sums = self._sums
        sums["n"] = sums.get("n", 0.0) + n
        sums["loss"] = sums.get("loss", 0.0) + n * float(loss.detach())
        if kl is not None:
            sums["kl"] = sums.get("kl", 0.0) + n * float(kl.detach())
            sums["ewc"] = sums.get("ewc", 0.0) + n * float(penalty.detach())

    def _publish(self, name: str, value: float, x_plot: int) -> None:
        if self.evaluator is not None:
            self.evaluator.publish_metric_value(MetricValue(self, name, float(value), x_plot))

    def _publish_epoch(self) -> None:
        n = max(self._sums.get("n", 0.0), 1.0)
        record = {
            "experience": self.clock.train_exp_counter, "phase": self.phase, "epoch": self.phase_epoch,
            "loss": self._sums.get("loss", 0.0) / n,
        }
        if self.phase == "compress":
            record["kl"] = self._sums["kl"] / n
            record["ewc"] = self._sums["ewc"] / n
        self.phase_log.append(record)
        x = self.clock.train_iterations
        self._publish(f"PnC_Loss_Epoch/{self.phase}_phase/train_stream", record["loss"], x)
        self._publish("PnC_Phase/train_phase/train_stream", PHASES.index(self.phase), x)
        if self.phase == "compress":
            self._publish("PnC_KL_Epoch/compress_phase/train_stream", record["kl"], x)
            self._publish("PnC_EWC_Epoch/compress_phase/train_stream", record["ewc"], x)

    def memory_report(self) -> dict[str, int]:
        """Scalar parameters of the knowledge base, the active column, the adaptors and in total.

        The network keeps this size however many tasks arrive.
        """
        sizes = self.model.n_parameters()
        return {"kb_params": sizes["kb"], "ac_params": sizes["ac"], "adaptor_params": sizes["adaptors"],
                "total_params": sizes["total"]}

    # ----- state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: the two columns, the adaptors, online EWC, the counters."""
        return {
            "model": self.model.state_dict(),
            "ewc": self.ewc.state_dict(),
            "tasks_seen": self.tasks_seen,
            "phase_log": [dict(r) for r in self.phase_log],
            "config": {
                "progress_epochs": self.progress_epochs, "compress_epochs": self.compress_epochs,
                "ewc_lambda": self.ewc_lambda, "fisher_samples": self.fisher_samples,
                "reset_adaptors": self.reset_adaptors,
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` into a strategy built like the saved one.

        The model gets the saved task heads and adaptors (see
        :class:`~avalanche_ext.models.ProgressCompressNet`); the online-EWC state stays
        where it was loaded until the next experience moves it to the strategy's device.
        """
        config = dict(state["config"])
        for key in ("progress_epochs", "compress_epochs"):
            if int(config[key]) < 1:
                raise ValueError(f"invalid state: {key}={config[key]}")
        self.model.load_state_dict(state["model"])
        self.ewc.load_state_dict(state["ewc"])
        self.tasks_seen = int(state["tasks_seen"])
        self.phase_log = [dict(r) for r in state["phase_log"]]
        self.progress_epochs, self.compress_epochs = int(config["progress_epochs"]), int(config["compress_epochs"])
        self.train_epochs = self.progress_epochs + self.compress_epochs
        self.ewc_lambda = float(config["ewc_lambda"])
        self.fisher_samples = config["fisher_samples"]
        self.reset_adaptors = bool(config["reset_adaptors"])


__all__ = ["PHASES", "ProgressCompress"]
