"""The lateral adaptor of Progress & Compress: how the active column reads the knowledge base.

For an adapted layer $i$ of the active column (AC), the adaptor adds
$\\alpha_i \\odot U_i\\, \\sigma(V_i h^{KB}_{i-1} + c_i)$ to the layer's output, where
$h^{KB}_{i-1}$ is the input the knowledge base's (KB) layer $i$ received on the same
example. :class:`~avalanche_ext.models.ProgressCompressNet` creates and wires the adaptors.

Paper: Schwarz et al., *Progress & Compress: A scalable framework for continual learning*,
ICML 2018, https://arxiv.org/abs/1805.06370 (eq. 1).
"""

from __future__ import annotations

import uuid
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

class LateralAdaptor(nn.Module):
    """$\\alpha \\odot U \\sigma(V h^{KB} + c)$ for one layer of the active column.

    It also carries the two forward hooks that wire it: ``_record`` on the KB's layer keeps
    that layer's input, ``_inject`` on the AC's layer adds the adaptor's output to the AC
    layer's output. Both do nothing unless the owning ``ProgressCompressNet`` armed
    them for an AC forward pass.

    Args:
        layer: the AC layer (``nn.Linear`` or ``nn.Conv2d``) the adaptor feeds.
        width: units (channels) of the hidden projection $V$.
    """

    def __init__(self, layer: nn.Module, width: int):
        super().__init__()
        if width < 1:
            raise ValueError(f"adaptor width must be >= 1, got {width}")
        self.width = int(width)
        if isinstance(layer, nn.Linear):
            self.in_size, self.out_size = layer.in_features, layer.out_features
            self.V: nn.Module = nn.Linear(self.in_size, width)
            self.U: nn.Module = nn.Linear(width, self.out_size, bias=False)
            alpha_shape: tuple[int, ...] = (self.out_size,)
        elif isinstance(layer, nn.Conv2d):
            self.in_size, self.out_size = layer.in_channels, layer.out_channels
            self.V = nn.Conv2d(self.in_size, width, kernel_size=1)
            self.U = nn.Conv2d(
                width, self.out_size, kernel_size=layer.kernel_size, stride=layer.stride,
                padding=layer.padding, dilation=layer.dilation, padding_mode=layer.padding_mode, bias=False,
            )
            alpha_shape = (self.out_size, 1, 1)
        else:
            raise TypeError(f"lateral adaptors feed nn.Linear or nn.Conv2d layers, not {type(layer).__name__}")
        self.kind = type(layer).__name__
        self.alpha = nn.Parameter(torch.empty(alpha_shape))
        self.token = uuid.uuid4().hex  # identifies the hooks this adaptor installed
        self._armed = False
        self._kb_input: Optional[torch.Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh random $V, c, U$ and $\\alpha \\sim \\mathcal{U}(0, 0.1)$."""
        self.V.reset_parameters()
        self.U.reset_parameters()
        with torch.no_grad():
            self.alpha.uniform_(0.0, 0.1)

    def fits(self, layer: nn.Module) -> bool:
        """Whether this adaptor still matches ``layer`` (a head may have been replaced by a wider one)."""
        if isinstance(layer, nn.Linear):
            return self.kind == "Linear" and (self.in_size, self.out_size) == (layer.in_features, layer.out_features)
        if isinstance(layer, nn.Conv2d):
            return self.kind == "Conv2d" and (self.in_size, self.out_size) == (layer.in_channels, layer.out_channels)
        return False

    def forward(self, kb_input: torch.Tensor) -> torch.Tensor:
        return self.alpha * self.U(F.relu(self.V(kb_input)))

    # ----- hooks (bound methods, so that deep copies of the network stay wired) -----
    def _record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if self._armed:
            self._kb_input = inputs[0]

    def _inject(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> Optional[torch.Tensor]:
        if not self._armed:
            return None
        kb_input = self._kb_input
        if kb_input is None:
            raise RuntimeError(
                "a lateral adaptor found no knowledge-base activation for its layer: every adapted "
                "Linear/Conv2d layer must run exactly once per forward pass in both columns"
            )
        self._kb_input = None
        return output + self(kb_input)


__all__ = ["LateralAdaptor"]
