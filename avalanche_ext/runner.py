"""Run one recipe on one benchmark, tracked in MLflow, and summarise it."""

from __future__ import annotations

import os
import random
import resource
import signal
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .benchmarks import build_benchmark, get_spec
from .checkpoint import CheckpointError, Checkpointer, capture_state
from .functional import summarize
from .logging import MLflowLogger, ProgressLogger, check_tracking, resolve_tracking_uri, tracking_client
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
    checkpoint_dir: Optional[str] = None
    resume: bool = False
    stop_after: Optional[int] = None
    kill_after: Optional[int] = None  # fault injection for crash-recovery tests, see KILL_AFTER_ENV


#: Fault injection for crash-recovery tests: ``AVALANCHE_EXT_KILL_AFTER=N`` (or
#: ``RunConfig.kill_after=N``) makes the run SIGKILL its own process right after writing the
#: checkpoint of training step ``N``, as a crashed machine would. It fires only in a run not
#: asked to resume: a resumed run (``--resume``, or an executor's retry) is the recovery and must
#: not crash again at the same step (in a process pool one dead worker takes its neighbours down
#: too, before they reach their own step ``N``).
KILL_AFTER_ENV = "AVALANCHE_EXT_KILL_AFTER"


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
    if (cfg.resume or cfg.stop_after is not None) and not cfg.checkpoint_dir:
        raise ValueError("--resume and --stop-after need checkpoints: give --checkpoint-dir (without --no-checkpoint)")
    if cfg.stop_after is not None and cfg.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1, got {cfg.stop_after}")
    return recipe, scenario, hp


def checkpointer(cfg: RunConfig, recipe, scenario: str, hp) -> Optional[Checkpointer]:
    """The run's checkpoint file in ``cfg.checkpoint_dir``, or None without checkpoints.

    Recipes that train once on the whole stream (``joint``) have nothing to resume.
    """
    if not cfg.checkpoint_dir or recipe.trains_once:
        return None
    name = f"{recipe.name}-{cfg.benchmark}-{scenario}-seed{cfg.seed}"
    name += ("-online" if cfg.online else "") + ("-validation" if cfg.validation else "")
    identity = {"recipe": recipe.name, "benchmark": cfg.benchmark, "scenario": scenario, "seed": cfg.seed,
                "n_experiences": cfg.n_experiences, "validation": cfg.validation, "online": cfg.online,
                "online_size": cfg.online_size if cfg.online else None,
                **{f"hp.{k}": v for k, v in hp.items()}}
    return Checkpointer(os.path.join(cfg.checkpoint_dir, name + ".ckpt"), identity)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train ``cfg.recipe`` experience by experience, evaluating on the whole test stream after each.

    With ``cfg.checkpoint_dir`` a checkpoint is written after every evaluated training step;
    with ``cfg.resume`` the run continues from it (same MLflow run, same final numbers as an
    uninterrupted run). Returns the result record printed by ``avalanche-ext run --json``.
    """
    recipe, scenario, hp = validate(cfg)
    uri = resolve_tracking_uri(cfg.tracking_uri)
    check_tracking(uri)
    ckpt = checkpointer(cfg, recipe, scenario, hp)
    saved = ckpt.load() if (ckpt is not None and cfg.resume and ckpt.exists()) else None
    if ckpt is not None and not cfg.resume and ckpt.exists():
        _close_abandoned(ckpt, uri)
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
    run_id = saved["progress"]["mlflow_run_id"] if saved else None
    logger = MLflowLogger(cfg.experiment, run_name, uri, params=params, tags=tags, parent_run_id=cfg.parent_run_id,
                          run_id=run_id)
    loggers: list = [logger]
    if cfg.progress:
        loggers.append(ProgressLogger(run_name, n_experiences=stream.n_experiences))
    stopped = False
    with logger:
        ctx = RecipeContext(stream, hp, make_evaluator(loggers), plugins=[FiniteLossGuard()], seed=cfg.seed)
        strategy = recipe.build(ctx)
        extra = getattr(strategy, "mlflow_params", None)
        if callable(extra):
            logger.log_params(extra())
        train_s, done = 0.0, 0
        writer = ckpt
        if ckpt is not None:
            capture_state(strategy)  # fails now, not after the first experience, if it cannot be saved
            if saved:
                progress = ckpt.restore(strategy, saved)
                train_s, done = progress["train_s"], progress["steps"]
                logger.accuracy_matrix = {int(k): dict(v) for k, v in progress["matrix"].items()}
                logger.client.set_tag(logger.run_id, "resumed_from_step", str(done))
                if cfg.parent_run_id:
                    logger.client.set_tag(logger.run_id, "mlflow.parentRunId", cfg.parent_run_id)
                print(f"{run_name}: resuming after training step {done} from {ckpt.path}", flush=True)
        if recipe.trains_once:
            t0 = time.perf_counter()
            strategy.train(stream.train_stream)
            train_s += time.perf_counter() - t0
            strategy.eval(stream.test_stream)
        else:
            steps = list(_training_steps(stream, cfg))
            for step, (exp, ends_experience) in enumerate(steps, 1):
                if step <= done:
                    continue
                t0 = time.perf_counter()
                strategy.train(exp)
                train_s += time.perf_counter() - t0
                if not ends_experience:
                    continue
                strategy.eval(stream.test_stream)
                if writer is not None and step < len(steps):
                    try:
                        writer.save(strategy, {"steps": step, "train_s": train_s, "matrix": logger.accuracy_matrix,
                                             "mlflow_run_id": logger.run_id})
                    except CheckpointError as e:  # keep training: losing the checkpoint must not lose the run
                        warnings.warn(f"{run_name}: no more checkpoints for this run: {e}", stacklevel=1)
                        logger.client.set_tag(logger.run_id, "checkpoint_error", str(e)[:5000])
                        writer = None
                        continue
                    _maybe_kill(step, cfg)
                    if cfg.stop_after is not None and step >= cfg.stop_after:
                        stopped = True
                        break
        matrix = logger.matrix()
        summary = summarize(matrix)
        rss = peak_rss_mb()
        if stopped:
            logger.client.set_tag(logger.run_id, "stopped_after_step", str(cfg.stop_after))
            logger.close(status="KILLED")
        else:
            logger.log_metric("train_s", train_s)
            logger.log_metric("peak_rss_mb", rss)
    if ckpt is not None and not stopped:
        ckpt.remove()
    return {
        "recipe": recipe.name, "family": recipe.family, "benchmark": cfg.benchmark, "scenario": scenario,
        "seed": cfg.seed, "online": cfg.online, **summary, "acc_matrix": matrix, "train_s": train_s, "peak_rss_mb": rss,
        "mlflow_run_id": logger.run_id, "resumed_from_step": done if saved else None, "stopped": stopped,
    }


def _close_abandoned(ckpt: Checkpointer, uri: str) -> None:
    """A run started again without --resume: end the MLflow run its old checkpoint belongs to."""
    try:
        run_id = ckpt.load()["progress"]["mlflow_run_id"]
    except Exception:  # noqa: BLE001 - another run's or an unreadable checkpoint: nothing of ours to close
        return
    client = tracking_client(uri)
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "abandoned", "started again without --resume")
            client.set_terminated(run_id, status="KILLED")
    except Exception:  # noqa: BLE001 - the run may live in another tracking store
        pass


def _maybe_kill(step: int, cfg: RunConfig) -> None:
    """Die like a crashed machine after checkpoint ``step`` if fault injection asks for it (see KILL_AFTER_ENV)."""
    if cfg.resume:
        return
    if cfg.kill_after == step or os.environ.get(KILL_AFTER_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)


def _training_steps(stream, cfg: RunConfig):
    """``(experience, evaluate_after)`` pairs: whole experiences, or online mini-experiences."""
    if not cfg.online:
        return ((exp, True) for exp in stream.train_stream)
    from .benchmarks.online import online_train_stream, with_boundaries

    return with_boundaries(online_train_stream(stream, cfg.online_size))
