"""Pretrain a network's feature extractor on data outside the stream, cached on disk.

Latent replay, AR1 and GNR assume a backbone that already extracts useful features
(the papers start from ImageNet weights). Weights cannot be downloaded here, so the
feature extractor is trained, before the stream starts, on the *training split of
another data set* (e.g. the MNIST subset for a Fashion-MNIST stream): no sample of the
stream is ever used. The result is cached under :func:`cache_dir` in a file whose name
is a hash of every setting that changes it, so each (data set, architecture, epochs,
learning rate, seed) combination is trained once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .files import atomic_save

#: bump when the pretraining procedure changes, so old cache files are not reused.
PRETRAIN_VERSION = 1


def cache_dir(path: Optional[Union[str, Path]] = None) -> Path:
    """Where pretrained weights are cached: ``path``, else ``$AVALANCHE_EXT_CACHE``, else ``~/.cache/avalanche-ext``."""
    if path is not None:
        return Path(path)
    env = os.environ.get("AVALANCHE_EXT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "avalanche-ext"


def pretrain_key(settings: dict[str, Any]) -> str:
    """A short stable hash of ``settings`` (a JSON-serialisable dict)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def pretrain_features(
    model: nn.Module,
    source: str = "mnist5k",
    *,
    module: str = "features",
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    input_shape: Optional[tuple[int, ...]] = None,
    data_root: Optional[Union[str, Path]] = None,
    cache: Optional[Union[str, Path]] = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Train ``model.<module>`` on the training split of ``source`` and load the result in place.

    A temporary linear head over all of the source's classes is trained with the
    feature extractor (Adam, cross-entropy) and then thrown away; only the feature
    extractor's weights are kept (and cached).

    Args:
        model: a network with a feature-extractor submodule ``module``.
        source: a data source of :mod:`avalanche_ext.benchmarks.sources` (``mnist5k``,
            ``fmnist``, ``digits``, ...) with the same input shape as the stream.
        module: name of the feature-extractor submodule.
        epochs: pretraining epochs (>= 1).
        lr: Adam learning rate (> 0).
        batch_size: minibatch size (>= 1).
        seed: seed of the initialisation and of the minibatch order.
        input_shape: the stream's input shape, checked against the source's.
        data_root: folder for sources that need one.
        cache: cache folder (see :func:`cache_dir`).
        use_cache: read and write the cache (``False``: always train, write nothing).

    Returns:
        ``{"source", "key", "path", "cached", "train_acc", "n_train"}``.

    Raises:
        ValueError: unknown source, bad settings, no such submodule, or an input shape
            that differs from the source's.

    Example:
        >>> net = build_network((1, 28, 28), 10)                      # doctest: +SKIP
        >>> info = pretrain_features(net, "mnist5k", epochs=3)        # doctest: +SKIP
    """
    from ..benchmarks.sources import LOADERS

    if source not in LOADERS:
        raise ValueError(f"unknown pretraining source {source!r}; choose one of {', '.join(sorted(LOADERS))}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    features = dict(model.named_modules()).get(module)
    if features is None or module == "":
        raise ValueError(f"the model has no submodule {module!r} to pretrain")
    data = LOADERS[source](Path(data_root) if data_root else None)
    x, y = data.x_train, data.y_train
    if input_shape is not None and tuple(input_shape) != tuple(x.shape[1:]):
        raise ValueError(f"pretraining source {source!r} has inputs of shape {tuple(x.shape[1:])}, "
                         f"the stream's are {tuple(input_shape)}; pick a source with the same input shape or 'none'")
    settings = {"version": PRETRAIN_VERSION, "source": source, "module": module, "arch": repr(features),
                "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "n": int(len(x))}
    key = pretrain_key(settings)
    path = cache_dir(cache) / f"pretrain-{source}-{key}.pt"
    if use_cache and path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        features.load_state_dict(saved["state_dict"])
        return {"source": source, "key": key, "path": str(path), "cached": True,
                "train_acc": saved["train_acc"], "n_train": int(len(x))}
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in features.modules():
            if hasattr(m, "reset_parameters") and m is not features:
                m.reset_parameters()
        with torch.no_grad():
            width = features(x[:2]).flatten(1).shape[1]
        head = nn.Linear(width, int(y.max()) + 1)
    params = list(features.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    was_training = features.training
    features.train()
    correct = seen = 0
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        correct = seen = 0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            out = head(features(x[idx]).flatten(1))
            loss = nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((out.argmax(1) == y[idx]).sum())
            seen += len(idx)
    features.train(was_training)
    train_acc = correct / max(seen, 1)
    if use_cache:
        atomic_save({"state_dict": features.state_dict(), "settings": settings, "train_acc": train_acc}, path)
    return {"source": source, "key": key, "path": str(path) if use_cache else None, "cached": False,
            "train_acc": train_acc, "n_train": int(len(x))}


def pretrain_for_stream(model: nn.Module, stream: Any, source: str, **kwargs: Any) -> Optional[dict[str, Any]]:
    """Recipe helper: pretrain ``model.features`` on ``source`` unless it is ``"none"``.

    Checks that the source's input shape matches ``stream.input_shape`` and refuses a
    source that is the stream's own data set (that would leak the stream).
    """
    if source in ("none", "", None):
        return None
    name = getattr(stream, "name", "")
    from ..benchmarks import get_spec

    try:
        stream_source = get_spec(name).source
    except Exception:  # a stream not from the catalogue
        stream_source = None
    if stream_source == source:
        raise ValueError(f"pretraining on {source!r} would use the stream's own data ({name}); pick another source")
    return pretrain_features(model, source, input_shape=tuple(stream.input_shape), **kwargs)


__all__ = ["PRETRAIN_VERSION", "cache_dir", "pretrain_features", "pretrain_for_stream", "pretrain_key"]
