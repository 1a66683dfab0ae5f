"""Model pieces: default networks and the building blocks the methods need."""

from .build import ARCHS, Classifier, MultiHeadNet, build_network, count_parameters
from .cnn import cnn_features
from .common import forward_by_task
from .ensemble import Ensemble
from .hat import HATModule, HATNet, HATResNet, build_hat_network
from .hypernet import HyperNetClassifier
from .latent_split import (
    LatentCapture, LatentCut, LatentLayerError, compute_latents, find_layer, latent_shape, output_size, parameters_below,
    split_model,
)
from .latent_generator import LatentGenerator
from .latent_vae import LatentVAE, train_continually
from .layers import (
    ChunkedHyperNetwork, FunctionalTarget, LateralAdaptor, MaskedConv2d, MaskedLinear, PiggybackConv2d, PiggybackLinear,
    TaskBatchNorm, UnsupportedTargetError,
)
from .mlp import mlp_features
from .piggyback import PiggybackNet
from .progress_compress import ProgressCompressNet
from .resnet import BasicBlock, ResNetFeatures, resnet18_features
from .supermask import SupSupNet, UnsupportedLayerError, build_supsup_network

__all__ = [
    "ARCHS", "BasicBlock", "ResNetFeatures", "resnet18_features",
    "ChunkedHyperNetwork", "Classifier", "Ensemble", "FunctionalTarget", "HATModule", "HATNet", "HATResNet", "HyperNetClassifier",
    "LatentCapture", "LatentCut", "LatentGenerator", "LatentLayerError", "LatentVAE", "LateralAdaptor",
    "MaskedConv2d", "MaskedLinear", "MultiHeadNet", "PiggybackConv2d", "PiggybackLinear", "PiggybackNet",
    "ProgressCompressNet", "SupSupNet", "TaskBatchNorm", "UnsupportedLayerError", "UnsupportedTargetError",
    "build_hat_network", "build_network", "build_supsup_network", "cnn_features", "compute_latents",
    "count_parameters", "find_layer", "forward_by_task", "latent_shape", "mlp_features", "output_size",
    "parameters_below", "split_model", "train_continually",
]
