"""avalanche-ext: continual-learning methods for Avalanche, taxonomy recipes, MLflow tracking."""

__version__ = "0.1.0"
