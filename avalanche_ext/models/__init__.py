"""Model pieces: default networks and the building blocks the methods need."""

from .mlp import Classifier, MultiHeadNet, build_network, cnn_features, count_parameters, mlp_features

__all__ = ["Classifier", "MultiHeadNet", "build_network", "cnn_features", "count_parameters", "mlp_features"]
