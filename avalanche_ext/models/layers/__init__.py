"""Building blocks of the methods' networks: HAT's gated base, masked layers, a functional target network,
a hypernetwork, adaptors."""

from .hat import GATE_CUTOFF, HATModule
from .functional_target import SUPPORTED_LAYERS, FunctionalTarget, UnsupportedTargetError, check_target
from .hypernetwork import ChunkedHyperNetwork
from .lateral import LateralAdaptor
from .piggyback import PiggybackConv2d, PiggybackLayer, PiggybackLinear, mask_layers
from .supermask import MaskedConv2d, MaskedLayer, MaskedLinear, TaskBatchNorm

__all__ = [
    "ChunkedHyperNetwork", "FunctionalTarget", "GATE_CUTOFF", "HATModule", "LateralAdaptor", "MaskedConv2d",
    "MaskedLayer", "MaskedLinear",
    "PiggybackConv2d", "PiggybackLayer", "PiggybackLinear", "SUPPORTED_LAYERS", "TaskBatchNorm",
    "UnsupportedTargetError", "check_target", "mask_layers",
]
