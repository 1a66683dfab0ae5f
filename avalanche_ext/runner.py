"""Run one recipe on one benchmark, tracked in MLflow, and summarise it."""

from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .benchmarks import build_benchmark, get_spec
from .functional import summarize
from .logging import MLflowLogger, ProgressLogger, check_tracking, resolve_tracking_uri
from .plugins import FiniteLossGuard
from .recipe import RecipeContext
from .registry import get_recipe


@dataclass
class RunConfig:
    """What to run. Every field has a command-line flag of ``avalanche-ext run``."""

    recipe: str
    benchmark: str = "split_digits"
    scenario: Optional[str] = None
    seed: int = 0
    n_experiences: Optional[int] = None
    epochs: Optional[int] = None
    overrides: dict[str, Any] = field(default_factory=dict)
    data_root: Optional[str] = None
    tracking_uri: Optional[str] = None
    experiment: str = "avalanche-ext"
    parent_run_id: Optional[str] = None
    validation: bool = False
    progress: bool = True
    threads: Optional[int] = None
    online: bool = False
    online_size: int = 10


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def default_scenario(recipe, spec) -> str:
    """The first scenario both the recipe and the benchmark support."""
    for s in spec.scenarios:
        if s in recipe.scenarios:
            return s
    return spec.default_scenario


def make_evaluator(loggers: list):
    """Avalanche's evaluator with the metrics our reports need."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        loggers=loggers,
    )


def validate(cfg: RunConfig):
    """Check everything that can be checked before loading data or training.

    Returns the recipe, the resolved scenario and the resolved hyper-parameters.
    """
    recipe = get_recipe(cfg.recipe)
    spec = get_spec(cfg.benchmark)
    scenario = cfg.scenario or default_scenario(recipe, spec)
    if scenario not in spec.scenarios:
        raise ValueError(f"benchmark {cfg.benchmark!r} supports scenarios {', '.join(spec.scenarios)}, not {scenario!r}")
    recipe.check_scenario(scenario)
    overrides = dict(cfg.overrides)
    if cfg.epochs is not None:
        overrides.setdefault("epochs", cfg.epochs)
    if cfg.online:
        if recipe.trains_once:
            raise ValueError(f"recipe {recipe.name!r} trains once on the whole stream; it has no streaming protocol")
        if cfg.online_size < 1:
            raise ValueError(f"--online-size must be >= 1, got {cfg.online_size}")
        if overrides.get("epochs", 1) not in (1, "1"):
            raise ValueError("the streaming protocol sees each sample once: --epochs must be 1 with --online")
        overrides["epochs"] = 1
    hp = recipe.resolve(cfg.benchmark, overrides)
    if cfg.n_experiences is not None and cfg.n_experiences < 1:
        raise ValueError(f"--n-experiences must be >= 1, got {cfg.n_experiences}")
    return recipe, scenario, hp


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train ``cfg.recipe`` experience by experience, evaluating on the whole test stream after each.

    Returns the result record printed by ``avalanche-ext run --json``.
    """
    recipe, scenario, hp = validate(cfg)
    uri = resolve_tracking_uri(cfg.tracking_uri)
    check_tracking(uri)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    stream = build_benchmark(
        cfg.benchmark, scenario, n_experiences=cfg.n_experiences, seed=cfg.seed,
        data_root=cfg.data_root, validation=cfg.validation,
    )
    seed_everything(cfg.seed)
    params = {
        "recipe": recipe.name, "family": recipe.family, "benchmark": cfg.benchmark, "scenario": scenario,
        "seed": cfg.seed, "n_experiences": stream.n_experiences, "validation": cfg.validation,
        "online": cfg.online, "online_size": cfg.online_size if cfg.online else None,
        **{f"hp.{k}": v for k, v in hp.items()},
    }
    tags = {"recipe": recipe.name, "benchmark": cfg.benchmark, "scenario": scenario}
    run_name = f"{recipe.name}/{cfg.benchmark}/{scenario}/seed{cfg.seed}" + ("/online" if cfg.online else "")
    logger = MLflowLogger(cfg.experiment, run_name, uri, params=params, tags=tags, parent_run_id=cfg.parent_run_id)
    loggers: list = [logger]
    if cfg.progress:
        loggers.append(ProgressLogger(run_name, n_experiences=stream.n_experiences))
    with logger:
        ctx = RecipeContext(stream, hp, make_evaluator(loggers), plugins=[FiniteLossGuard()], seed=cfg.seed)
        strategy = recipe.build(ctx)
        extra = getattr(strategy, "mlflow_params", None)
        if callable(extra):
            logger.log_params(extra())
        train_s = 0.0
        if recipe.trains_once:
            t0 = time.perf_counter()
            strategy.train(stream.train_stream)
            train_s += time.perf_counter() - t0
            strategy.eval(stream.test_stream)
        else:
            for exp, ends_experience in _training_steps(stream, cfg):
                t0 = time.perf_counter()
                strategy.train(exp)
                train_s += time.perf_counter() - t0
                if ends_experience:
                    strategy.eval(stream.test_stream)
        matrix = logger.matrix()
        summary = summarize(matrix)
        rss = peak_rss_mb()
        logger.log_metric("train_s", train_s)
        logger.log_metric("peak_rss_mb", rss)
    return {
        "recipe": recipe.name, "family": recipe.family, "benchmark": cfg.benchmark, "scenario": scenario,
        "seed": cfg.seed, "online": cfg.online, **summary, "acc_matrix": matrix, "train_s": train_s, "peak_rss_mb": rss,
        "mlflow_run_id": logger.run_id,
    }


def _training_steps(stream, cfg: RunConfig):
    """``(experience, evaluate_after)`` pairs: whole experiences, or online mini-experiences."""
    if not cfg.online:
        return ((exp, True) for exp in stream.train_stream)
    from .benchmarks.online import online_train_stream, with_boundaries

    return with_boundaries(online_train_stream(stream, cfg.online_size))
