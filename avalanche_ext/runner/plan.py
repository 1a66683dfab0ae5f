"""Everything about a run that is decided before it starts: checks, names, parameters, checkpoint file."""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional

import torch

from ..benchmarks import get_spec
from ..checkpoint import Checkpointer, identity_hash
from ..devices import check_amp, resolve_device
from ..hparams import HParams
from ..recipe import Recipe
from ..registry import get_recipe
from .config import RunConfig, RunSettings, check_retry_budget, check_seed


class RunPlan(NamedTuple):
    """A checked run: the recipe, the scenario it runs in and its resolved hyper-parameters."""

    recipe: Recipe
    scenario: str
    hp: HParams


def default_scenario(recipe: Recipe, spec: Any) -> str:
    """The first scenario both the recipe and the benchmark support."""
    for s in spec.scenarios:
        if s in recipe.scenarios:
            return s
    return spec.default_scenario


def validate(cfg: RunConfig) -> RunPlan:
    """Check everything that can be checked before loading data, tracking or training.

    Raises:
        UnknownNameError: unknown recipe or benchmark.
        UnsupportedScenarioError: the recipe does not support the scenario.
        HParamError: an unknown hyper-parameter, a value of the wrong type or not among its choices.
        DeviceUnavailableError: the device does not exist here.
        ValueError: settings that contradict each other, a seed outside ``[0, 2**32 - 1]``, a bad retry budget.
    """
    check_seed(cfg.seed)
    check_retry_budget(cfg.tracking_retry_s)
    if cfg.threads is not None and cfg.threads < 1:
        raise ValueError(f"threads must be >= 1, got {cfg.threads}")
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
    hp = recipe.resolve(cfg.benchmark, overrides, scenario=scenario)
    if cfg.n_experiences is not None and cfg.n_experiences < 1:
        raise ValueError(f"--n-experiences must be >= 1, got {cfg.n_experiences}")
    if (cfg.resume or cfg.stop_after is not None) and not cfg.checkpoint_dir:
        raise ValueError("--resume and --stop-after need checkpoints: give --checkpoint-dir (without --no-checkpoint)")
    if cfg.stop_after is not None and cfg.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1, got {cfg.stop_after}")
    check_device_settings(cfg, recipe)
    return RunPlan(recipe, scenario, hp)


def check_device_settings(cfg: RunSettings, recipe: Optional[Recipe] = None) -> torch.device:
    """The run's device, checked with its mixed-precision and data-loader settings; raises before anything starts.

    Raises:
        DeviceUnavailableError: the device does not exist here.
        ValueError: ``amp`` the device or ``recipe`` cannot run, or ``num_workers < 0``.
    """
    device = resolve_device(cfg.device)
    check_amp(cfg.amp, device)
    if recipe is not None:
        recipe.check_amp(cfg.amp)
    if cfg.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {cfg.num_workers}")
    return device


def run_name(cfg: RunConfig, plan: RunPlan) -> str:
    """The MLflow run's name: ``recipe/benchmark/scenario/seedN`` (``/online`` for the streaming protocol)."""
    return f"{plan.recipe.name}/{cfg.benchmark}/{plan.scenario}/seed{cfg.seed}" + ("/online" if cfg.online else "")


def run_params(cfg: RunConfig, plan: RunPlan, n_experiences: int) -> dict[str, Any]:
    """The MLflow parameters that say what was run (every resolved hyper-parameter as ``hp.<name>``)."""
    return {
        "recipe": plan.recipe.name, "family": plan.recipe.family, "benchmark": cfg.benchmark,
        "scenario": plan.scenario, "seed": cfg.seed, "n_experiences": n_experiences, "validation": cfg.validation,
        "online": cfg.online, "online_size": cfg.online_size if cfg.online else None,
        **{f"hp.{k}": v for k, v in plan.hp.items()},
    }


def checkpoint_stem(cfg: RunConfig, plan: RunPlan) -> str:
    """The part of the checkpoint's file name that runs with other settings share: ``recipe-benchmark-scenario-seedN``."""
    name = f"{plan.recipe.name}-{cfg.benchmark}-{plan.scenario}-seed{cfg.seed}"
    return name + ("-online" if cfg.online else "") + ("-validation" if cfg.validation else "")


def has_own_checkpoint(cfg: RunConfig, plan: Optional[RunPlan] = None) -> bool:
    """Whether ``cfg.checkpoint_dir`` holds a checkpoint of exactly this run (its settings included).

    A command that fans out (``taxonomy --resume``) resumes the runs that have one and starts the
    others afresh: a checkpoint left with other settings then ends its old run as abandoned instead
    of refusing the run. ``plan``: the run's :func:`validate` result, when the caller has it already.
    """
    ckpt = checkpointer(cfg, plan or validate(cfg))
    return ckpt is not None and ckpt.exists()


def checkpointer(cfg: RunConfig, plan: RunPlan) -> Optional[Checkpointer]:
    """The run's checkpoint file in ``cfg.checkpoint_dir``, or None without checkpoints.

    The file is ``<checkpoint_stem>-<hash of the identity>.ckpt``: runs that differ in any
    hyper-parameter keep their checkpoints apart. Recipes that train once on the whole stream
    (``joint``) have nothing to resume.
    """
    recipe, scenario, hp = plan
    if not cfg.checkpoint_dir or recipe.trains_once:
        return None
    identity = {"recipe": recipe.name, "benchmark": cfg.benchmark, "scenario": scenario, "seed": cfg.seed,
                "n_experiences": cfg.n_experiences, "validation": cfg.validation, "online": cfg.online,
                "online_size": cfg.online_size if cfg.online else None,
                **{f"hp.{k}": v for k, v in hp.items()}}
    name = f"{checkpoint_stem(cfg, plan)}-{identity_hash(identity)}.ckpt"
    return Checkpointer(os.path.join(cfg.checkpoint_dir, name), identity)
