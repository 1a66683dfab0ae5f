"""The equal-budget selection: every recipe's declared grid, in every scenario it supports, on the validation split.

Each recipe searches the same number of configurations (:data:`~avalanche_ext.recipe.GRID_SIZE`) with
the same seeds, epochs and batch size of the benchmark. Every finished run is appended at once to
``<out>/<benchmark>/runs.csv``, so that ``resume`` reuses it after an interruption (an unfinished run
continues from its checkpoint); each (recipe, scenario) gets a record ``<out>/<benchmark>/<recipe>_<scenario>.md``
and its best configuration goes into the selected-settings file the recipes ship.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .benchmarks import get_spec
from .executors import FanOutSettings, dispatch
from .logging import Tracking
from .recipe import GRID_SIZE, Recipe
from .registry import all_recipes, get_recipe
from .report.csvlog import append_row
from .report.stats import STD_CONVENTION, mean_std
from .runner import RunConfig, validate
from .sweep import grid_table

RUN_COLUMNS = ["recipe", "scenario", "seed", "point", "settings", "status", "acc", "task_inference_acc", "train_s",
               "mlflow_run_id", "error"]


@dataclass(kw_only=True)
class SelectConfig(FanOutSettings):
    """Settings of ``avalanche-ext select`` (the shared ones: :class:`FanOutSettings`); runs always use the
    validation split."""

    seeds: int = 2
    recipes: Optional[list[str]] = None
    scenarios: Optional[list[str]] = None
    out: str = "docs/results/validation"
    selected_file: str = "avalanche_ext_recipes/selected.json"
    resume: bool = False
    checkpoint_root: str = ".avalanche-ext/select"
    experiment: str = "avalanche-ext-select"
    command: Optional[str] = None


def _settings(cfg: SelectConfig, fixed: dict[str, Any]) -> str:
    """What else must match for a finished run to be reused (with the recipe, scenario, seed and point):
    the command's settings and every hyper-parameter the search does not vary (``fixed``), the recipe's
    defaults included, so that a changed default runs again."""
    return json.dumps({"n_experiences": cfg.n_experiences, "epochs": cfg.epochs, "fixed": fixed,
                       "online": cfg.online, "online_size": cfg.online_size if cfg.online else None},
                      sort_keys=True, default=str)


def _point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def plan(cfg: SelectConfig) -> tuple[list[RunConfig], list[tuple[Recipe, str]]]:
    """The runs of the selection and the (recipe, scenario) pairs it searches.

    Raises:
        ValueError: a benchmark that reuses another one's selections, bad seeds or scenarios, a ``--set``
            of a searched setting, or a recipe without a grid.
    """
    spec = get_spec(cfg.benchmark)
    if spec.settings_from:
        raise ValueError(f"{cfg.benchmark} reuses the selections of {spec.settings_from} unchanged (settings_from); "
                         f"select on {spec.settings_from} instead")
    if cfg.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {cfg.seeds}")
    for s in cfg.scenarios or ():
        if s not in ("class", "task", "domain"):
            raise ValueError(f"unknown scenario {s!r}: use class, task or domain")
    recipes = [get_recipe(r) for r in cfg.recipes] if cfg.recipes else all_recipes()
    jobs, pairs = [], []
    for recipe in recipes:
        own = {k: v for k, v in cfg.overrides.items() if k in recipe.defaults(cfg.benchmark)}
        searched = sorted(set(own) & set(recipe.grid))
        if searched:
            raise ValueError(f"overrides {', '.join(searched)}: recipe {recipe.name!r} searches them in its grid; "
                             f"drop them")
        for scenario in spec.scenarios:
            if scenario not in recipe.scenarios or (cfg.scenarios and scenario not in cfg.scenarios) \
                    or (cfg.online and recipe.trains_once):
                continue
            pairs.append((recipe, scenario))
            for point in recipe.grid_points(cfg.benchmark, scenario):
                digest = hashlib.sha1(_point_key(point).encode()).hexdigest()[:10]
                for seed in range(cfg.seeds):
                    job = RunConfig(recipe.name, **{**cfg.shared(), "validation": True,
                                                    "overrides": {**own, **point}},
                                    scenario=scenario, seed=seed, progress=False, resume=cfg.resume,
                                    checkpoint_dir=str((Path(cfg.checkpoint_root) / cfg.benchmark / digest).resolve()))
                    validate(job)  # every configuration type-checks before anything runs
                    jobs.append(job)
    if not pairs:
        raise ValueError(f"no recipe to select on {cfg.benchmark} with scenarios {cfg.scenarios or spec.scenarios}")
    return jobs, pairs


def budget_lines(cfg: SelectConfig, pairs: list[tuple[Recipe, str]]) -> list[str]:
    """One line per recipe: its search budget (identical for all) and the epochs and batch size it trains with."""
    lines = []
    for name in dict.fromkeys(r.name for r, _ in pairs):
        recipe = next(r for r, _ in pairs if r.name == name)
        scenarios = [s for r, s in pairs if r.name == name]
        hp = recipe.unselected(cfg.benchmark, scenarios[0])
        epochs = cfg.epochs if cfg.epochs is not None else hp["epochs"]
        lines.append(f"  {recipe.name:26} {GRID_SIZE} configurations x {cfg.seeds} seed(s) in each of "
                     f"{len(scenarios)} scenario(s) ({', '.join(scenarios)}); epochs {epochs}, batch {hp['batch_size']}")
    return lines


class RunLog:
    """``runs.csv`` of a benchmark's selection: one row per finished run, appended as it ends."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            with open(path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def drop(self, pairs: set[tuple[str, str]]) -> None:
        """Forget the runs of ``pairs`` (a selection started again without resume)."""
        self.rows = [r for r in self.rows if (r["recipe"], r["scenario"]) not in pairs]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RUN_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)

    def finished(self, job: RunConfig, point: dict[str, Any], settings: str) -> Optional[dict[str, str]]:
        for r in reversed(self.rows):
            if (r["recipe"], r["scenario"], int(r["seed"]), r["point"], r["settings"], r["status"]) == \
                    (job.recipe, job.scenario, job.seed, _point_key(point), settings, "ok"):
                return r
        return None

    def append(self, row: dict[str, Any]) -> None:
        row = {k: "" if row.get(k) is None else str(row[k]) for k in RUN_COLUMNS}
        self.rows.append(row)
        append_row(self.path, RUN_COLUMNS, row)


def run_select(cfg: SelectConfig) -> list[dict[str, Any]]:
    """Run the selection, write its records and the selected-settings file; return one summary per pair."""
    jobs, pairs = plan(cfg)
    folder = Path(cfg.out) / cfg.benchmark
    log = RunLog(folder / "runs.csv")
    if not cfg.resume:
        log.drop({(r.name, s) for r, s in pairs})
    grid_keys = {r.name: list(r.grid) for r, _ in pairs}
    by_name = {r.name: r for r, _ in pairs}

    def point_of(job: RunConfig) -> dict[str, Any]:
        return {k: job.overrides[k] for k in grid_keys[job.recipe]}

    def settings_of(job: RunConfig) -> str:
        hp = {**by_name[job.recipe].unselected(cfg.benchmark, job.scenario), **job.overrides}
        return _settings(cfg, {k: v for k, v in hp.items() if k not in grid_keys[job.recipe]})

    todo = [j for j in jobs if log.finished(j, point_of(j), settings_of(j)) is None]
    print(f"selection on {cfg.benchmark} (validation split): {len(pairs)} recipe/scenario pair(s), {len(jobs)} runs"
          + (f", {len(jobs) - len(todo)} already finished in {log.path}" if cfg.resume else "")
          + f"; the same search budget for every recipe:", file=sys.stderr)
    print("\n".join(budget_lines(cfg, pairs)), file=sys.stderr, flush=True)
    tracking = Tracking.connect(cfg.tracking_uri)
    for job in todo:
        job.tracking_uri = tracking.uri
    done = [0]

    def on_result(job: RunConfig, result: dict[str, Any]) -> None:
        done[0] += 1
        ok = result["status"] == "ok"
        log.append({"recipe": job.recipe, "scenario": job.scenario, "seed": job.seed,
                    "point": _point_key(point_of(job)), "settings": settings_of(job), "status": result["status"],
                    "acc": result.get("acc"), "task_inference_acc": result.get("task_inference_acc"),
                    "train_s": result.get("train_s"), "mlflow_run_id": result.get("mlflow_run_id"),
                    "error": None if ok else str(result.get("error"))[:500]})
        text = f"val acc {result['acc']:.4f}" if ok else f"FAILED {str(result.get('error'))[:150]}"
        print(f"[{done[0]}/{len(todo)}] {job.recipe:24} {job.scenario:6} {point_of(job)} seed {job.seed}: {text}",
              file=sys.stderr, flush=True)

    dispatch(todo, on_result, cfg.executor, workers=cfg.workers, address=cfg.address, cpus_per_task=cfg.cpus_per_task,
             gpus_per_run=cfg.gpus_per_run)
    summaries = []
    for recipe, scenario in pairs:
        summary = _summarize(cfg, log, recipe, scenario, [j for j in jobs if (j.recipe, j.scenario) ==
                                                         (recipe.name, scenario)], point_of, settings_of)
        summary["record"] = str(folder / f"{recipe.name}_{scenario}.md")
        Path(summary["record"]).write_text(record_text(cfg, recipe, scenario, summary))
        summaries.append(summary)
    write_selected(cfg.selected_file, cfg.benchmark, summaries)
    return summaries


def _summarize(cfg: SelectConfig, log: RunLog, recipe: Recipe, scenario: str, jobs: list[RunConfig],
               point_of, settings_of) -> dict[str, Any]:
    rows = []
    for point in recipe.grid_points(cfg.benchmark, scenario):
        runs = [log.finished(j, point, settings_of(j)) for j in jobs if point_of(j) == point]
        accs = [float(r["acc"]) for r in runs if r is not None]
        mean, std = mean_std(accs)
        rows.append({**point, "val_acc_mean": mean, "val_acc_std": std, "n": len(runs),
                     "n_failed": len(runs) - len(accs)})
    complete = [i for i, r in enumerate(rows) if r["n_failed"] == 0 and not math.isnan(r["val_acc_mean"])]
    best = max(complete, key=lambda i: (rows[i]["val_acc_mean"], -i)) if complete else None  # ties: the earlier
    hp = validate(jobs[0]).hp
    return {"recipe": recipe.name, "scenario": scenario, "keys": list(recipe.grid), "rows": rows, "best": best,
            "epochs": hp["epochs"], "batch_size": hp["batch_size"]}


def record_text(cfg: SelectConfig, recipe: Recipe, scenario: str, summary: dict[str, Any]) -> str:
    """The Markdown record of one (recipe, scenario): what was searched, how, the command, the grid."""
    keys, rows, best = summary["keys"], summary["rows"], summary["best"]

    def setting(row: dict[str, Any]) -> str:
        return ", ".join(f"`{k}={row[k]}`" for k in keys)

    marks = ["current" if i == 0 else "" for i in range(len(rows))]
    if best is not None:
        marks[best] = "**chosen**" + (" (current)" if best == 0 else "")
        chosen = (f"Chosen: {setting(rows[best])}, the best mean validation accuracy"
                  + (" (the settings before the search)." if best == 0 else
                     f"; before the search: {setting(rows[0])}."))
    else:
        chosen = "No configuration finished on every seed: nothing was selected."
    fixed = ", ".join(f"`{k}={v}`" for k, v in cfg.overrides.items()) or "none"
    return (f"# `{recipe.name}` on `{cfg.benchmark}`, {scenario}-incremental: validation grid\n\n{chosen}\n\n"
            f"Validation split carved from the training data (the test stream is never used). The same budget for "
            f"every recipe: {GRID_SIZE} configurations x {cfg.seeds} seed(s), {summary['epochs']} epoch(s), batch "
            f"{summary['batch_size']}; fixed settings: {fixed}. Accuracy: {STD_CONVENTION}.\n\n"
            f"```bash\n{cfg.command or 'avalanche-ext select --benchmark ' + cfg.benchmark}\n```\n\n"
            f"{grid_table(keys, rows, marks)}\n")


def write_selected(path: str | Path, benchmark: str, summaries: list[dict[str, Any]]) -> None:
    """Put each pair's chosen configuration into the selected-settings file (other entries are kept)."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.is_file() else {}
    for s in summaries:
        if s["best"] is None:
            print(f"{s['recipe']} {s['scenario']}: no configuration finished on every seed; its selection is left "
                  f"as it was", file=sys.stderr)
            continue
        row = s["rows"][s["best"]]
        data.setdefault(s["recipe"], {})[f"{benchmark}/{s['scenario']}"] = {
            "settings": {k: row[k] for k in s["keys"]}, "record": s["record"],
            "val_acc": round(row["val_acc_mean"], 4), "seeds": row["n"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
