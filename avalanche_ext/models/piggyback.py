"""Piggyback: binary masks per task over a frozen backbone, plus one head per task.

Piggyback (Mallya, Davis, Lazebnik, "Piggyback: Adapting a Single Network to Multiple
Tasks by Learning to Mask Weights", ECCV 2018, arXiv:1801.06519) never changes the
weights $W$ of a trained backbone. For each new task $t$ it learns a real-valued mask
$m_t$ (same shape as $W$, initialised to ``mask_scale``) and a new head, and runs the
backbone with $W \\odot \\mathbb{1}[m_t > \\tau]$. The threshold is bypassed in the
backward pass (straight-through), so $\\nabla_{m_t} L = \\nabla_{\\hat W} L \\odot W$.
When the task is learned only the binary mask is kept: one bit per masked weight. The
masked layers are in :mod:`avalanche_ext.models.layers.piggyback`.

Since no pretrained weights are available offline, the backbone can be trained on the
first task (that task then uses the unmasked backbone: a mask of ones costs nothing) and
is frozen afterwards; or a backbone trained elsewhere is passed with ``pretrained=True``.

Scenarios: task-incremental only (the task label selects the mask and the head).

Example:
    >>> from avalanche_ext.models import build_network
    >>> net = build_network((1, 8, 8), 2, hidden=64)
    >>> model = PiggybackNet(net.features, feature_size=64, n_outputs=2)
    >>> model.add_task(0); model.consolidate(0)     # task 0 trained the backbone
    >>> model.add_task(1)                           # task 1 learns a mask over it
    >>> model(torch.zeros(3, 1, 8, 8), 1).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import copy as _copy
from typing import Any, Iterator

import torch
from avalanche.models import MultiTaskModule
from torch import nn

from .common import forward_by_task
from .layers.piggyback import NORM_LAYERS, PiggybackLayer, check_mask_settings, mask_layers


class PiggybackNet(MultiTaskModule):
    """A backbone shared by all tasks through per-task binary weight masks, and one head per task.

    Args:
        backbone: a module mapping inputs to ``feature_size`` features, built from
            ``nn.Linear`` / ``nn.Conv2d`` (masked) plus parameter-free layers and norm layers.
        feature_size: width of the backbone's output.
        n_outputs: units of each task's head, indexed by class id: it must exceed every class id
            of every task. Avalanche's task-incremental streams keep global class ids (classes
            ``[1, 4]`` need ``n_outputs >= 5``) unless built with
            ``class_ids_from_zero_in_each_exp=True``; the pack's own task streams number each
            task's classes from 0.
        threshold: $\\tau$ (paper: 5e-3).
        mask_scale: initial value of the real-valued masks (paper: 1e-2).
        pretrained: the backbone is already trained: freeze it now, every task learns a mask.
            Otherwise the first task trains the backbone and uses it unmasked.
        copy: wrap a deep copy of ``backbone`` (leaves the caller's module untouched).

    A task the model has not learned yields all-zero logits.
    """

    def __init__(self, backbone: nn.Module, feature_size: int, n_outputs: int, *, threshold: float = 5e-3,
                 mask_scale: float = 1e-2, pretrained: bool = False, copy: bool = True):
        super().__init__()
        check_mask_settings(threshold, mask_scale)
        if feature_size < 1 or n_outputs < 1:
            raise ValueError(f"feature_size and n_outputs must be >= 1, got {feature_size}, {n_outputs}")
        backbone = _copy.deepcopy(backbone) if copy else backbone
        if isinstance(backbone, (nn.Linear, nn.Conv2d)):
            backbone = nn.Sequential(backbone)
        if mask_layers(backbone, threshold=threshold, mask_scale=mask_scale) == 0:
            raise ValueError("the backbone has no nn.Linear or nn.Conv2d layer to mask")
        self.backbone = backbone
        self.heads = nn.ModuleDict()
        self.feature_size, self.n_outputs = int(feature_size), int(n_outputs)
        self.threshold, self.mask_scale = float(threshold), float(mask_scale)
        self.dense_tasks: list[int] = []
        self.learned: list[int] = []
        self.frozen = False
        if pretrained:
            self.freeze_backbone()

    # -- structure ---------------------------------------------------------------------------
    def masked_layers(self) -> list[PiggybackLayer]:
        return [m for m in self.backbone.modules() if isinstance(m, PiggybackLayer)]

    def backbone_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The shared weights (everything in the backbone except the masks)."""
        for name, p in self.backbone.named_parameters():
            if ".masks." not in f".{name}":
                yield name, p
        for name, b in self.backbone.named_buffers():
            if not name.rsplit(".", 1)[-1].startswith("bits_"):
                yield name, b

    @property
    def tasks(self) -> list[int]:
        return sorted(int(k) for k in self.heads)

    def _new_head(self) -> nn.Linear:
        device = self.masked_layers()[0].weight.device
        return nn.Linear(self.feature_size, self.n_outputs).to(device)

    def add_task(self, task: int) -> None:
        """Add a head for ``task`` and, once the backbone is frozen, a mask in every layer.

        Before the backbone is frozen, ``task`` trains the backbone itself (dense task).
        """
        task = int(task)
        if str(task) in self.heads:
            return
        if not self.frozen and self.dense_tasks:
            raise ValueError(
                f"task {self.dense_tasks[0]} is still training the backbone: call consolidate({self.dense_tasks[0]}) "
                f"(PiggybackPlugin does it after each experience) before adding task {task}"
            )
        if self.frozen:
            for layer in self.masked_layers():
                layer.add_mask(task)
        else:
            self.dense_tasks.append(task)
        self.heads[str(task)] = self._new_head()

    def consolidate(self, task: int) -> None:
        """Make ``task`` final: freeze the backbone (dense task) or pack its masks; freeze its head."""
        task = int(task)
        if str(task) not in self.heads:
            raise KeyError(f"task {task} is unknown")
        if task in self.learned:
            return
        if task in self.dense_tasks:
            self.freeze_backbone()
        else:
            for layer in self.masked_layers():
                layer.pack_mask(task)
        self.heads[str(task)].requires_grad_(False)
        self.learned.append(task)

    def freeze_backbone(self) -> None:
        """No gradient ever reaches the shared weights again; norm layers stay in eval mode."""
        for module in self.backbone.modules():
            if isinstance(module, PiggybackLayer):
                module.freeze()
            else:
                for p in module.parameters(recurse=False):
                    p.requires_grad_(False)
        self.frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> "PiggybackNet":
        super().train(mode)
        if self.frozen:
            for module in self.backbone.modules():
                if isinstance(module, NORM_LAYERS):
                    module.eval()
        return self

    def adaptation(self, experience: Any) -> None:
        super().adaptation(experience)
        if self.training:
            for task in experience.task_labels:
                self.add_task(int(task))

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, task_labels: Any) -> torch.Tensor:  # type: ignore[override]
        """Logits of width ``n_outputs``; ``task_labels`` is an int or one label per row."""
        if task_labels is None:
            raise ValueError("PiggybackNet needs task labels: they select the mask and the head")
        return forward_by_task(self, x, task_labels, self.n_outputs)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        task = int(task_label)
        if str(task) not in self.heads:
            return x.new_zeros(x.shape[0], self.n_outputs)
        layers = self.masked_layers()
        selected = None if task in self.dense_tasks else task
        for layer in layers:
            layer.task = selected
        try:
            return self.heads[str(task)](self.backbone(x))
        finally:
            for layer in layers:
                layer.task = None

    # -- memory ------------------------------------------------------------------------------
    def memory_report(self) -> dict[str, int]:
        """What the model stores, in bytes: the shared backbone, and what each task adds.

        A task adds its head and, unless it trained the backbone, its binary masks (one bit
        per masked weight, each layer rounded up to whole bytes).
        """
        weights = [layer.weight for layer in self.masked_layers()]
        mask_bytes = sum((w.numel() + 7) // 8 for w in weights)
        head_bytes = (self.feature_size + 1) * self.n_outputs * weights[0].element_size()
        return {
            "backbone_bytes": sum(t.numel() * t.element_size() for _, t in self.backbone_tensors()),
            "mask_bytes_per_task": mask_bytes,
            "head_bytes_per_task": head_bytes,
            "bytes_per_task": mask_bytes + head_bytes,
            "masked_weights": sum(w.numel() for w in weights),
        }

    # -- state -------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "dense": list(self.dense_tasks), "learned": list(self.learned),
                "frozen": self.frozen}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.dense_tasks = list(state["dense"])
        self.learned = list(state["learned"])
        if state["frozen"]:
            self.freeze_backbone()
        for task in self.learned:
            self.heads[str(task)].requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # noqa: D401 - torch hook
        state = state_dict.get(prefix + "_extra_state")
        if state is not None:
            for task in state["tasks"]:
                if str(task) not in self.heads:
                    self.heads[str(task)] = self._new_head()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


__all__ = ["PiggybackNet"]
