"""Run every recipe in every scenario it supports on one benchmark, and write the report."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .benchmarks import get_spec
from .executors import EXECUTORS, FanOutSettings, default_workers, dispatch
from .logging import Tracking
from .registry import all_recipes, get_recipe
from .report.partial import PartialRuns
from .report.tables import ResultTable
from .runner import RunConfig, validate
from .runner.plan import check_device_settings, has_own_checkpoint


@dataclass(kw_only=True)
class TaxonomyConfig(FanOutSettings):
    """Settings of ``avalanche-ext taxonomy`` (the shared ones: :class:`FanOutSettings`)."""

    family: Optional[str] = None
    recipes: Optional[list[str]] = None
    scenarios: Optional[list[str]] = None
    out: Optional[str] = None
    progress: bool = False
    resume: bool = False


def plan(cfg: TaxonomyConfig) -> tuple[list[RunConfig], list[dict[str, str]]]:
    """The runs to make, and the (recipe, scenario) pairs skipped with the reason."""
    spec = get_spec(cfg.benchmark)
    if cfg.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {cfg.seeds}")
    recipes = [get_recipe(r) for r in cfg.recipes] if cfg.recipes else all_recipes(cfg.family)
    if not recipes:
        raise ValueError(f"no recipe in family {cfg.family!r}")
    scenarios = cfg.scenarios or list(spec.scenarios)
    for s in scenarios:
        if s not in ("class", "task", "domain"):
            raise ValueError(f"unknown scenario {s!r}: use class, task or domain")
    check_device_settings(cfg)  # the device and mixed precision, before anything runs
    unknown = [k for k in cfg.overrides if not any(k in r.defaults(cfg.benchmark) for r in recipes)]
    if unknown:
        raise ValueError(f"--set {', '.join(unknown)}: no selected recipe has such a hyper-parameter")
    jobs, skipped = [], []
    for recipe in recipes:
        for scenario in scenarios:
            if scenario not in spec.scenarios:
                skipped.append({"recipe": recipe.name, "scenario": scenario,
                                "reason": f"{cfg.benchmark} has no {scenario} scenario"})
                continue
            if cfg.online and recipe.trains_once:
                skipped.append({"recipe": recipe.name, "scenario": scenario,
                                "reason": f"{recipe.name} trains once on the whole stream (no streaming protocol)"})
                continue
            if scenario not in recipe.scenarios:
                skipped.append({"recipe": recipe.name, "scenario": scenario,
                                "reason": f"{recipe.name} supports {'/'.join(recipe.scenarios)} only"})
                continue
            if cfg.amp is not None and not recipe.amp:
                skipped.append({"recipe": recipe.name, "scenario": scenario,
                                "reason": f"{recipe.name} does not train under mixed precision (--amp)"})
                continue
            own = {k: v for k, v in cfg.overrides.items() if k in recipe.defaults(cfg.benchmark, scenario)}
            recipe.resolve(cfg.benchmark, own, scenario=scenario)  # bad settings fail before anything runs
            for seed in range(cfg.seeds):
                jobs.append(RunConfig(recipe.name, **{**cfg.shared(), "overrides": own}, scenario=scenario, seed=seed,
                                      progress=cfg.progress))
    return jobs, skipped


def settings_key(cfg: TaxonomyConfig) -> dict[str, Any]:
    """What must match for an earlier report's runs to be reused by ``--resume``."""
    return {"benchmark": cfg.benchmark, "n_experiences": cfg.n_experiences, "epochs": cfg.epochs,
            "overrides": cfg.overrides, "validation": cfg.validation, "online": cfg.online,
            "online_size": cfg.online_size if cfg.online else None}


def _reuse_finished(cfg: TaxonomyConfig, out: Path, jobs: list[RunConfig], table: ResultTable,
                    partial: PartialRuns) -> list[RunConfig]:
    """Put the runs an earlier report finished into ``table``; return the jobs still to run.

    A finished run is reused when the earlier report recorded the same hyper-parameters for its recipe
    and scenario (a report that recorded none is run again: its settings may predate a selection), and
    so is a run that an unfinished report (killed, or still short of its end) made as this one would; the
    earlier rows of recipes and scenarios this call does not plan stay in the report, so that
    ``--recipes`` adds to it."""
    import json

    summary = out / "summary.json"
    earlier_hparams: dict[str, Any] = {}
    if summary.is_file():
        data = json.loads(summary.read_text())
        earlier = data.get("settings")
        if earlier is not None and earlier != json.loads(json.dumps(settings_key(cfg))):
            raise ValueError(f"--resume: the report in {out} was made with other settings ({earlier}); "
                             f"use another --out or drop --resume")
        earlier_hparams = data.get("hparams") or {}
    finished = ResultTable.read_finished(out / "results.csv")
    unfinished_report = partial.finished(table.hparams)
    todo, changed = [], set()
    for job in jobs:
        pair = f"{job.recipe}/{job.scenario}"
        result = finished.get((job.recipe, job.scenario, job.seed))
        if result is not None and earlier_hparams.get(pair) != json.loads(json.dumps(table.hparams[pair])):
            changed.add(pair)
            result = None
        result = unfinished_report.get((job.recipe, job.scenario, job.seed), result)
        if result is None:
            todo.append(job)
        else:
            table.add(job, result)
    planned = {(job.recipe, job.scenario) for job in jobs}
    if (out / "results.csv").is_file() and summary.is_file():
        kept = ResultTable.load(out)
        for row in kept.rows:
            if (row["recipe"], row["scenario"]) not in planned:
                table.rows.append(row)
        table.matrices.update({k: v for k, v in kept.matrices.items() if k not in planned})
        table.hparams.update({k: v for k, v in earlier_hparams.items() if tuple(k.split("/")) not in planned})
        table.skipped += [s for s in kept.skipped if (s["recipe"], s["scenario"]) not in planned
                          and s not in table.skipped]
    if changed:
        print(f"--resume: {out} recorded other (or no) hyper-parameters for {', '.join(sorted(changed))}: "
              f"run again", file=sys.stderr, flush=True)
    print(f"--resume: {len(jobs) - len(todo)} run(s) already finished in {out}, {len(todo)} to run",
          file=sys.stderr, flush=True)
    return todo


def run_taxonomy(cfg: TaxonomyConfig) -> ResultTable:
    """Run the plan, track it under one MLflow parent run, write and log the report."""
    jobs, skipped = plan(cfg)
    if cfg.executor not in EXECUTORS:
        raise ValueError(f"unknown executor {cfg.executor!r}: use {', '.join(EXECUTORS)}")
    tracking = Tracking.connect(cfg.tracking_uri)
    get_spec(cfg.benchmark).availability(cfg.data_root)  # warm the data cache / fail on missing data early
    from .benchmarks import build_benchmark

    build_benchmark(cfg.benchmark, n_experiences=cfg.n_experiences, data_root=cfg.data_root)
    client = tracking.client
    parent = client.create_run(tracking.experiment_id(cfg.experiment), run_name=f"taxonomy/{cfg.benchmark}",
                               tags={"kind": "taxonomy"})
    parent_id = parent.info.run_id
    family = {job.recipe: get_recipe(job.recipe).family for job in jobs}
    for job in jobs:
        job.parent_run_id = parent_id
        job.tracking_uri = tracking.uri
    client.log_param(parent_id, "benchmark", cfg.benchmark)
    client.log_param(parent_id, "seeds", cfg.seeds)
    client.log_param(parent_id, "n_runs", len(jobs))
    client.log_param(parent_id, "command", " ".join(sys.argv[1:])[:5000] or "python api")

    table = ResultTable(cfg.benchmark, skipped=skipped)
    planned = [(job, validate(job)) for job in jobs]
    table.hparams = {f"{job.recipe}/{job.scenario}": p.hp.to_dict() for job, p in planned}  # as run
    out = Path(cfg.out or Path("reports") / cfg.benchmark)
    for job, p in planned:
        job.checkpoint_dir = str((out / "checkpoints").resolve())
        job.resume = cfg.resume and has_own_checkpoint(job, p)
    partial = PartialRuns(out, settings_key(cfg))
    if cfg.resume:
        jobs = _reuse_finished(cfg, out, jobs, table, partial)
    else:
        partial.clear()
    t0 = time.time()
    workers = cfg.workers or default_workers()
    where = {"serial": "", "process": f" x{workers}",
             "ray": f" at {cfg.address or 'a local instance'}, {cfg.cpus_per_task} CPU(s) per run"}[cfg.executor]
    print(f"taxonomy on {cfg.benchmark}: {len(jobs)} runs ({len(skipped)} recipe/scenario pairs skipped), "
          f"executor {cfg.executor}{where}", file=sys.stderr, flush=True)

    reused = len(table.rows)

    def on_result(job: RunConfig, result: dict[str, Any]) -> None:
        table.add(job, {"family": family[job.recipe], **result})
        if result["status"] == "ok":  # on disk at once: a kill of the report loses no finished run
            partial.append(table.rows[-1], table.hparams[f"{job.recipe}/{job.scenario}"])
        n = len(table.rows) - reused
        if result["status"] == "ok":
            text = f"acc {result['acc']:.3f} forgetting {result['forgetting']:.3f} ({result['train_s']:.1f}s)"
            if result.get("resumed_from_step"):
                text += f", resumed after step {result['resumed_from_step']} from its checkpoint"
        else:
            text = f"FAILED {result['error'][:200]}"
        print(f"[{n}/{len(jobs)} {time.time() - t0:6.0f}s] {job.recipe:20} {job.scenario:6} seed {job.seed}: {text}",
              file=sys.stderr, flush=True)

    try:
        dispatch(jobs, on_result, cfg.executor, workers=cfg.workers, address=cfg.address,
                 cpus_per_task=cfg.cpus_per_task, gpus_per_run=cfg.gpus_per_run)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    table.settings = settings_key(cfg)
    files = table.write(out, command=" ".join(["avalanche-ext", *sys.argv[1:]]) if sys.argv[1:] else None)
    partial.clear()  # results.csv holds every run now
    for path in files:
        client.log_artifact(parent_id, str(path), "report" if path.parent == out else f"report/{path.parent.name}")
    client.set_tag(parent_id, "n_failed", str(table.n_failed))
    client.set_terminated(parent_id, "FINISHED")
    print(table.markdown(), flush=True)
    print(f"report written to {out}/ (results.md, results.csv, charts, heatmaps); MLflow parent run {parent_id}",
          file=sys.stderr)
    return table
