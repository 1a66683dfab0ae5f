"""Model pieces: default networks and the building blocks the methods need."""

from .build import Classifier, MultiHeadNet, build_network, count_parameters
from .cnn import cnn_features
from .mlp import mlp_features
from .supermask import MaskedConv2d, MaskedLinear, SupSupNet, TaskBatchNorm, UnsupportedLayerError, build_supsup_network
from .ensemble import Ensemble
from .piggyback import PiggybackConv2d, PiggybackLinear, PiggybackNet
from .hat import HATNet, build_hat_network
from .hypernet import ChunkedHyperNetwork, FunctionalTarget, HyperNetClassifier, UnsupportedTargetError
from .progress_compress import LateralAdaptor, ProgressCompressNet

from .latent_split import (LatentCapture, LatentCut, LatentLayerError, compute_latents, find_layer, latent_shape,
                           output_size, parameters_below, split_model)
from .latent_vae import LatentGenerator, LatentVAE, train_continually
__all__ = ["Classifier", "MultiHeadNet", "build_network", "cnn_features", "count_parameters", "mlp_features"]
__all__ += ["MaskedConv2d", "MaskedLinear", "SupSupNet", "TaskBatchNorm", "UnsupportedLayerError", "build_supsup_network"]
__all__ += ["Ensemble", "PiggybackConv2d", "PiggybackLinear", "PiggybackNet"]
__all__ += ["HATNet", "build_hat_network"]
__all__ += ["ChunkedHyperNetwork", "FunctionalTarget", "HyperNetClassifier", "UnsupportedTargetError"]
__all__ += ["LateralAdaptor", "ProgressCompressNet"]
__all__ += ["LatentCapture", "LatentCut", "LatentLayerError", "compute_latents", "find_layer", "latent_shape",
            "output_size", "parameters_below", "split_model"]
__all__ += ["LatentGenerator", "LatentVAE", "train_continually"]
