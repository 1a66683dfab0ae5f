"""What a run's parameters say about its strategy and its software."""

from __future__ import annotations

from typing import Any

#: Plugins every run has (the evaluator, loggers, the loss guard): not part of a method's description.
_INFRASTRUCTURE = ("EvaluationPlugin", "MLflowLogger", "ProgressLogger", "FiniteLossGuard", "Clock", "StopWatch")

#: Packages a result depends on.
_PACKAGES = ("avalanche-ext", "avalanche-lib", "torch", "torchvision", "numpy", "mlflow")


def _n_parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_strategy(strategy: Any) -> dict[str, Any]:
    """Parameters describing a strategy: its class, model, optimizer and every plugin's settings."""
    params: dict[str, Any] = {
        "strategy": type(strategy).__name__,
        "model": type(strategy.model).__name__,
        "model.n_params": _n_parameters(strategy.model),
        "train_mb_size": getattr(strategy, "train_mb_size", None),
        "train_epochs": getattr(strategy, "train_epochs", None),
    }
    opt = getattr(strategy, "optimizer", None)
    if opt is not None:
        params["optimizer"] = type(opt).__name__
        for k, v in opt.defaults.items():
            if isinstance(v, (int, float, str, bool)):
                params[f"optimizer.{k}"] = v
    names = []
    for plugin in getattr(strategy, "plugins", []):
        name = type(plugin).__name__
        if name in _INFRASTRUCTURE:
            continue
        names.append(name)
        for k, v in getattr(plugin, "__dict__", {}).items():
            if not k.startswith("_") and isinstance(v, (int, float, str, bool)) and v is not None:
                params[f"plugin.{name}.{k}"] = v
    params["plugins"] = ",".join(names) or "none"
    return params


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on, as ``version.<package>`` parameters."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in _PACKAGES:
        try:
            out[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            out[f"version.{pkg}"] = "not installed"
    return out
