"""Model pieces: default networks and the building blocks the methods need."""

from .mlp import Classifier, MultiHeadNet, build_network, cnn_features, count_parameters, mlp_features
from .common import forward_by_task
from .layers import (
    ChunkedHyperNetwork, FunctionalTarget, LateralAdaptor, MaskedConv2d, MaskedLinear, PiggybackConv2d, PiggybackLinear,
    TaskBatchNorm, UnsupportedTargetError,
)
from .supermask import SupSupNet, UnsupportedLayerError, build_supsup_network
from .ensemble import Ensemble
from .piggyback import PiggybackNet
from .hat import HATNet, build_hat_network
from .hypernet import HyperNetClassifier
from .progress_compress import ProgressCompressNet

from .latent_vae import LatentVAE, train_continually
__all__ = ["Classifier", "MultiHeadNet", "build_network", "cnn_features", "count_parameters", "mlp_features"]
__all__ += ["MaskedConv2d", "MaskedLinear", "SupSupNet", "TaskBatchNorm", "UnsupportedLayerError", "build_supsup_network"]
__all__ += ["Ensemble", "PiggybackConv2d", "PiggybackLinear", "PiggybackNet"]
__all__ += ["HATNet", "build_hat_network"]
__all__ += ["ChunkedHyperNetwork", "FunctionalTarget", "HyperNetClassifier", "UnsupportedTargetError"]
__all__ += ["LateralAdaptor", "ProgressCompressNet"]
__all__ += ["forward_by_task"]
__all__ += ["LatentVAE", "train_continually"]
