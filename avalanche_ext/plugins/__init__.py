"""One ``SupervisedPlugin`` per method."""

from .buffer_rehearsal import BufferRehearsalPlugin
from .exstream import ExStreamPlugin
from .guards import FiniteLossGuard, NonFiniteLossError
from .supsup import SupSupPlugin
from .ensemble import EnsemblePlugin
from .piggyback import PiggybackPlugin
from .hat import HATPlugin
from .hypernet import HypernetworkPlugin

from ..models.latent_split import LatentLayerError
from .latent_replay import LatentReplayBase, LatentReplayPlugin
from .cwr_star import CWRStarHead
from .generative_latent_replay import GenerativeLatentReplayPlugin
from .synaptic_intelligence import SafeSynapticIntelligencePlugin
__all__ = ["BufferRehearsalPlugin", "ExStreamPlugin", "FiniteLossGuard", "NonFiniteLossError"]
__all__ += ["SupSupPlugin"]
__all__ += ["EnsemblePlugin", "PiggybackPlugin"]
__all__ += ["HATPlugin"]
__all__ += ["HypernetworkPlugin"]
__all__ += ["LatentLayerError", "LatentReplayBase", "LatentReplayPlugin", "CWRStarHead", "GenerativeLatentReplayPlugin"]
__all__ += ["SafeSynapticIntelligencePlugin"]
