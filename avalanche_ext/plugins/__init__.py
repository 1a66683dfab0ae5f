"""One ``SupervisedPlugin`` per method, and the scaffolding they share (``plugins.base``)."""

from ..models.latent_split import LatentLayerError
from .amp import AutocastPlugin, IncompatibleTemplateError
from .base import (
    IncompatibleModelError, MethodPlugin, check_distinct_task_labels, check_model, require_new_task, restrict_optimizer,
    single_task_label,
)
from .buffer_rehearsal import BufferRehearsalPlugin
from .cwr_star import CWRStarHead
from .ensemble import EnsemblePlugin
from .exstream import ExStreamPlugin
from .generative_latent_replay import GenerativeLatentReplayPlugin
from .guards import FiniteLossGuard, NonFiniteLossError
from .hat import HATPlugin
from .hypernet import HypernetworkPlugin
from .icarl_means import ExemplarMeansPlugin
from .latent_replay import LatentReplayBase, LatentReplayPlugin
from .piggyback import PiggybackPlugin
from .supsup import SupSupPlugin
from .synaptic_intelligence import SafeSynapticIntelligencePlugin

__all__ = [
    "AutocastPlugin", "IncompatibleTemplateError",
    "BufferRehearsalPlugin", "CWRStarHead", "EnsemblePlugin", "ExemplarMeansPlugin", "ExStreamPlugin", "FiniteLossGuard",
    "GenerativeLatentReplayPlugin", "HATPlugin", "HypernetworkPlugin", "IncompatibleModelError", "LatentLayerError",
    "LatentReplayBase", "LatentReplayPlugin", "MethodPlugin", "NonFiniteLossError", "PiggybackPlugin",
    "SafeSynapticIntelligencePlugin", "SupSupPlugin", "check_distinct_task_labels", "check_model",
    "require_new_task", "restrict_optimizer", "single_task_label",
]
