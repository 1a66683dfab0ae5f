"""Deep generative replay: a generator learns the inputs continually, the previous model labels its samples."""

from __future__ import annotations

import copy
from typing import Any, Optional

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.models.utils import avalanche_forward
from torch.utils.data import DataLoader

from ..functional.generative_replay import hard_targets, soft_target_loss, weighted_replay_loss

__all__ = ["DeepGenerativeReplayPlugin"]

TARGETS = ("hard", "soft")


class DeepGenerativeReplayPlugin(SupervisedPlugin):
    """Replay samples of a continually trained generator, labelled by the model of the previous task.

    Idea: a "scholar" is a solver (the strategy's model) and a generator (e.g.
    :class:`~avalanche_ext.models.image_vae.ImageVAE`). Before task :math:`t` both are copied and
    frozen. Every training step of the solver draws as many samples from the frozen
    generator as the current mini-batch holds, labels them with the frozen solver, and
    weights their loss by the number of tasks seen so the old tasks count :math:`t-1`
    times the new one. After the solver, the generator learns the task's inputs in the
    same way: real data of the task mixed with samples of its frozen copy.

    Loss while learning task :math:`t` (:math:`\\tilde x \\sim G_{t-1}`, :math:`f_{t-1}` the
    frozen solver, :math:`C_{<t}` the classes seen before task :math:`t`):

    .. math::
        L = \\tfrac{1}{t}\\,\\mathrm{CE}(f(x), y) + \\tfrac{t-1}{t}\\,L_{\\text{replay}}(\\tilde x),\\quad
        L_{\\text{replay}} = \\begin{cases}
            \\mathrm{CE}\\big(f(\\tilde x), \\arg\\max_{c \\in C_{<t}} f_{t-1}(\\tilde x)_c\\big) & \\text{hard (DGR)} \\\\
            -T^2 \\sum_c q_c \\log \\mathrm{softmax}(f(\\tilde x) / T)_c & \\text{soft (DGR+distill)}
        \\end{cases}

    where :math:`q` is the frozen solver's softmax at temperature :math:`T` over :math:`C_{<t}`,
    zero on every other output (so the current task's classes are pushed down on replayed
    samples), and the generator minimises :math:`\\tfrac{1}{t}\\,\\mathcal{L}_{\\text{VAE}}(x) +
    \\tfrac{t-1}{t}\\,\\mathcal{L}_{\\text{VAE}}(\\tilde x)` for ``generator_iterations`` steps.

    Paper: H. Shin, J. K. Lee, J. Kim, J. Kim, *Continual Learning with Deep Generative
    Replay*, NeurIPS 2017, https://arxiv.org/abs/1705.08690 (hard targets); G. M. van de Ven,
    A. S. Tolias, *Three scenarios for continual learning*, 2019,
    https://arxiv.org/abs/1904.07734 (soft targets, the :math:`1/t` weighting).

    Scenarios: class- and domain-incremental (replayed samples take the current task label,
    so a multi-head model would mislabel them).

    Differences from Avalanche's ``GenerativeReplayPlugin``: that one appends as many
    replayed samples as real ones and averages them together (a fixed 1/2 weight, so the
    oldest task's share halves with every new task), labels them with an argmax over every
    output, and trains its generator on the same 1/2 mixture.

    Example:
        >>> model = build_network((1, 28, 28), 10)
        >>> dgr = DeepGenerativeReplayPlugin(ImageVAE((1, 28, 28)), generator_iterations=1000)
        >>> strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
        ...                  criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, plugins=[dgr])
        >>> for exp in benchmark.train_stream:
        ...     strategy.train(exp)

    Args:
        generator: a module with ``loss(x) -> scalar`` and ``sample(n) -> inputs``.
        generator_iterations: generator updates per experience.
        generator_lr: learning rate of the generator's Adam optimizer.
        generator_batch_size: real samples per generator update (and as many replayed);
            ``None`` uses the strategy's ``train_mb_size``.
        targets: ``"hard"`` (labels from the frozen solver) or ``"soft"`` (distillation).
        temperature: distillation temperature for ``targets="soft"``.

    Raises:
        ValueError: bad hyper-parameters, or a generator without ``loss``/``sample``.
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        *,
        generator_iterations: int = 1000,
        generator_lr: float = 1e-3,
        generator_batch_size: Optional[int] = None,
        targets: str = "soft",
        temperature: float = 2.0,
    ):
        super().__init__()
        if not isinstance(generator, torch.nn.Module) or not all(
            callable(getattr(generator, m, None)) for m in ("loss", "sample")
        ):
            raise ValueError("generator must be an nn.Module with loss(x) and sample(n) methods, e.g. ImageVAE(shape)")
        if isinstance(generator_iterations, bool) or not isinstance(generator_iterations, int) or generator_iterations < 0:
            raise ValueError(f"generator_iterations must be an integer >= 0, got {generator_iterations!r}")
        if generator_lr <= 0:
            raise ValueError(f"generator_lr must be > 0, got {generator_lr}")
        if generator_batch_size is not None and int(generator_batch_size) < 1:
            raise ValueError(f"generator_batch_size must be >= 1 or None, got {generator_batch_size}")
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {TARGETS}, got {targets!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.generator = generator
        self.generator_iterations = int(generator_iterations)
        self.generator_lr = float(generator_lr)
        self.generator_batch_size = None if generator_batch_size is None else int(generator_batch_size)
        self.targets = targets
        self.temperature = float(temperature)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=self.generator_lr)
        #: experiences learned so far.
        self.n_trained = 0
        #: classes of the experiences learned so far (what the frozen solver may label with).
        self.seen_classes: list[int] = []
        self.old_model: Optional[torch.nn.Module] = None
        self.old_generator: Optional[torch.nn.Module] = None
        #: last replay loss of the solver (0 when nothing is replayed).
        self.last_replay_loss = 0.0

    @property
    def n_tasks(self) -> int:
        """:math:`t`: the tasks seen, counting the one being learned."""
        return self.n_trained + 1

    # ----- solver ----------------------------------------------------------------------
    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.generator.to(strategy.device)

    def before_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.n_trained == 0:
            self.old_model = self.old_generator = None
            return
        self.old_model = copy.deepcopy(strategy.model).eval()
        self.old_generator = copy.deepcopy(self.generator).eval()
        for module in (self.old_model, self.old_generator):
            module.requires_grad_(False)

    def before_backward(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if self.old_model is None:
            self.last_replay_loss = 0.0
            return
        x = self.old_generator.sample(len(strategy.mb_x)).to(strategy.device)
        tasks = torch.full((len(x),), int(strategy.mb_task_id[0]), dtype=torch.long, device=strategy.device)
        with torch.no_grad():
            teacher = avalanche_forward(self.old_model, x, tasks)
        student = avalanche_forward(strategy.model, x, tasks)
        if self.targets == "hard":
            replay = F.cross_entropy(student, hard_targets(teacher, self.seen_classes))
        else:
            replay = soft_target_loss(student, teacher, self.seen_classes, self.temperature)
        strategy.loss = weighted_replay_loss(strategy.loss, replay, self.n_tasks)
        self.last_replay_loss = float(replay.detach())

    # ----- generator -------------------------------------------------------------------
    def after_training_exp(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.train_generator(strategy.experience.dataset, strategy.train_mb_size, strategy.device)
        classes = getattr(strategy.experience, "classes_in_this_experience", None) or []
        self.seen_classes = sorted(set(self.seen_classes) | {int(c) for c in classes})
        self.n_trained += 1
        self.old_model = self.old_generator = None

    def train_generator(self, dataset: Any, batch_size: int, device: Any = "cpu") -> None:
        """``generator_iterations`` updates on ``dataset``'s inputs mixed with the frozen generator's samples."""
        if self.generator_iterations == 0:
            return
        bs = self.generator_batch_size or int(batch_size)
        loader = DataLoader(dataset, batch_size=bs, shuffle=True, drop_last=len(dataset) > bs)
        self.generator.train()
        done = 0
        while done < self.generator_iterations:
            for batch in loader:
                x = batch[0].to(device)
                loss = self.generator.loss(x)
                if self.old_generator is not None:
                    replayed = self.old_generator.sample(len(x)).to(device)
                    loss = weighted_replay_loss(loss, self.generator.loss(replayed), self.n_tasks)
                self.generator_optimizer.zero_grad()
                loss.backward()
                self.generator_optimizer.step()
                done += 1
                if done == self.generator_iterations:
                    break
        self.generator.eval()

    # ----- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, progress, and the generator with its optimizer."""
        return {
            "generator_iterations": self.generator_iterations,
            "generator_lr": self.generator_lr,
            "generator_batch_size": self.generator_batch_size,
            "targets": self.targets,
            "temperature": self.temperature,
            "n_trained": self.n_trained,
            "seen_classes": list(self.seen_classes),
            "generator": {k: v.detach().clone() for k, v in self.generator.state_dict().items()},
            "generator_optimizer": copy.deepcopy(self.generator_optimizer.state_dict()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (into a plugin built with the same generator shape)."""
        self.generator_iterations = int(state["generator_iterations"])
        self.generator_lr = float(state["generator_lr"])
        self.generator_batch_size = state["generator_batch_size"]
        self.targets = state["targets"]
        self.temperature = float(state["temperature"])
        self.n_trained = int(state["n_trained"])
        self.seen_classes = [int(c) for c in state["seen_classes"]]
        self.generator.load_state_dict(state["generator"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.old_model = self.old_generator = None
