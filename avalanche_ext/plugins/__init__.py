"""One ``SupervisedPlugin`` per method."""

from .base import (
    IncompatibleModelError, MethodPlugin, check_distinct_task_labels, check_model, require_new_task, restrict_optimizer,
    single_task_label,
)
from .buffer_rehearsal import BufferRehearsalPlugin
from .exstream import ExStreamPlugin
from .guards import FiniteLossGuard, NonFiniteLossError
from .supsup import SupSupPlugin
from .ensemble import EnsemblePlugin
from .piggyback import PiggybackPlugin
from .hat import HATPlugin
from .hypernet import HypernetworkPlugin

from .latent_replay import LatentBuffer, LatentLayerError, LatentReplayPlugin
from .negative_replay import CWRStarHead, GenerativeLatentReplayPlugin
from .synaptic_intelligence import SafeSynapticIntelligencePlugin
__all__ = ["BufferRehearsalPlugin", "ExStreamPlugin", "FiniteLossGuard", "NonFiniteLossError"]
__all__ += ["SupSupPlugin"]
__all__ += ["EnsemblePlugin", "PiggybackPlugin"]
__all__ += ["IncompatibleModelError", "MethodPlugin", "check_distinct_task_labels", "check_model", "require_new_task"]
__all__ += ["restrict_optimizer", "single_task_label"]
__all__ += ["HATPlugin"]
__all__ += ["HypernetworkPlugin"]
__all__ += ["LatentBuffer", "LatentLayerError", "LatentReplayPlugin", "CWRStarHead", "GenerativeLatentReplayPlugin"]
__all__ += ["SafeSynapticIntelligencePlugin"]
