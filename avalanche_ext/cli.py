"""The ``avalanche-ext`` command: benchmarks, list, run, taxonomy, sweep, select, leaderboard, compare, runs, sync."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Optional, Sequence

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _resume_command(argv: Sequence[str]) -> str:
    """The command line that continues an interrupted command: the same flags, ``--resume`` instead of ``--stop-after``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--stop-after":
            skip = True
            continue
        if a.startswith("--stop-after="):
            continue
        out.append(a)
    if "--resume" not in out:
        out.append("--resume")
    return "avalanche-ext " + shlex.join(out)


def _interrupted_line(stop: Any, argv: Sequence[str]) -> str:
    """The one line a run or taxonomy ended by SIGINT, SIGTERM or a stop file prints."""
    what = f"interrupted by {stop.why}"
    if stop.run_id:
        what += f"; MLflow run {stop.run_id} marked KILLED"
    if getattr(stop, "runs_killed", 0):
        what += f" with {stop.runs_killed} of its runs"
    if stop.checkpoint:
        what += f"; checkpoint kept in {stop.checkpoint}"
    if getattr(stop, "spool", None):
        what += f"; tracking records not sent are in {stop.spool} (avalanche-ext sync {stop.spool})"
    return f"avalanche-ext: {what}; continue with: {_resume_command(argv)}"


def _parse_sets(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def check_retry_budget(value: float, flag: str) -> float:
    from .runner import check_retry_budget as check

    return check(value, flag)


def _shared(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~avalanche_ext.runner.RunSettings` every command takes from its flags (all but ``--validation``:
    a sweep always runs on the validation split)."""
    return {"benchmark": args.benchmark, "n_experiences": args.n_experiences, "epochs": args.epochs,
            "overrides": _parse_sets(args.set), "data_root": args.data_root, "online": args.online,
            "online_size": args.online_size, "tracking_uri": args.tracking_uri, "experiment": args.experiment,
            "tracking_retry_s": check_retry_budget(args.tracking_retry_s, "--tracking-retry-s"),
            "log_model": args.log_model,
            "device": args.device, "amp": args.amp, "num_workers": args.num_workers, "pin_memory": args.pin_memory}


def _fan_out(args: argparse.Namespace) -> dict[str, Any]:
    """The flags of ``executor_options`` and ``--seeds``."""
    return {"seeds": args.seeds, "executor": args.executor, "workers": args.workers, "address": args.address,
            "cpus_per_task": args.cpus_per_task, "gpus_per_run": args.gpus_per_run}


def cmd_benchmarks(args: argparse.Namespace) -> int:
    from .benchmarks import BENCHMARKS

    width = max(len(name) for name in BENCHMARKS) + 1
    print(f"{'name':{width}} {'scenarios':18} {'exps':>4}  {'files':8} description")
    for spec in BENCHMARKS.values():
        ok, why = spec.availability(args.data_root)
        print(f"{spec.name:{width}} {','.join(spec.scenarios):18} {spec.default_experiences:>4}  "
              f"{'present' if ok else 'missing':8} {spec.description}")
        print(f"{'':{width}}   layout: {spec.layout}")
        if not ok and args.verbose:
            print(f"{'':{width}}   why: {why}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import all_recipes

    recipes = all_recipes(args.family)
    if args.json:
        print(json.dumps([{"name": r.name, "family": r.family, "paper": r.paper, "scenarios": list(r.scenarios),
                           "summary": r.summary, "grid": r.grid, "selected": r.selected} for r in recipes]))
        return 0
    if args.settings:
        for r in recipes:
            print(f"{r.name}: grid " + " x ".join(f"{k} {list(v)}" for k, v in r.grid.items()))
            for where, entry in sorted(r.selected.items()):
                chosen = ", ".join(f"{k}={v}" for k, v in entry["settings"].items())
                print(f"  {where:24} {chosen}  (record: {entry.get('record', '-')})")
            if not r.selected:
                print("  no selection yet: the recipe's own settings apply")
        return 0
    print(f"{'recipe':20} {'family':15} {'scenarios':20} summary / paper")
    for r in recipes:
        print(f"{r.name:20} {r.family:15} {','.join(r.scenarios):20} {r.summary}")
        print(f"{'':57} {r.paper}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .plugins import NonFiniteLossError
    from .runner import RunConfig, TrackedRun, check_seed

    check_seed(args.seed, "--seed")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    cfg = RunConfig(
        args.recipe, **_shared(args), validation=args.validation, scenario=args.scenario, seed=args.seed,
        progress=not args.quiet, threads=args.threads,
        checkpoint_dir=None if args.no_checkpoint else args.checkpoint_dir, resume=args.resume,
        stop_after=args.stop_after,
    )
    tracked = TrackedRun(cfg)  # checks everything before anything is created
    try:
        result = tracked.execute()
    except NonFiniteLossError as e:
        kept = f"; the last checkpoint is kept in {cfg.checkpoint_dir}" if cfg.checkpoint_dir else ""
        print(f"avalanche-ext: training stopped: {e}. The MLflow run is marked FAILED{kept}.", file=sys.stderr)
        return EXIT_FAILED
    if result.get("tracking_spool"):
        print(f"avalanche-ext: the tracking store stopped answering ({result['tracking_error']}); training went on "
              f"and the run's metrics, parameters, tags, artifacts and final status are kept in "
              f"{result['tracking_spool']}: send them with: avalanche-ext sync {result['tracking_spool']}",
              file=sys.stderr)
    if result["stopped"]:
        print(f"stopped after {cfg.stop_after} experience(s) as asked; the checkpoint is in {cfg.checkpoint_dir}: "
              f"run the same command with --resume instead of --stop-after to continue", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['recipe']} on {result['benchmark']} ({result['scenario']}-IL, seed {result['seed']}): "
              f"acc {result['acc']:.4f}  forgetting {result['forgetting']:.4f}  bwt {result['bwt']:.4f}  "
              f"train {result['train_s']:.1f}s  peak RSS {result['peak_rss_mb']:.0f} MB  "
              f"mlflow run {result['mlflow_run_id']}")
    return 0


def cmd_taxonomy(args: argparse.Namespace) -> int:
    from .taxonomy import TaxonomyConfig, run_taxonomy

    cfg = TaxonomyConfig(
        **_shared(args), **_fan_out(args), validation=args.validation, family=args.family,
        recipes=[r for r in (args.recipes or "").split(",") if r] or None,
        scenarios=[s for s in (args.scenarios or "").split(",") if s] or None,
        out=args.out, progress=args.progress, resume=args.resume,
    )
    table = run_taxonomy(cfg)
    return 0 if table.all_ok else EXIT_FAILED


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import SweepConfig, parse_grid, run_sweep, sweep_table, write_sweep_record

    cfg = SweepConfig(
        **_shared(args), **_fan_out(args), recipe=args.recipe, grid=parse_grid(args.grid) if args.grid else None,
        scenario=args.scenario,
    )
    rows = run_sweep(cfg)
    table = sweep_table(cfg, rows)
    print(f"sweep of {cfg.recipe} on {cfg.benchmark} (validation split, {cfg.seeds} seed(s)); best first:")
    print(table)
    if args.out:
        write_sweep_record(args.out, cfg, rows, command="avalanche-ext " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        print(f"record written to {args.out}")
    if args.json:
        print(json.dumps({"recipe": cfg.recipe, "benchmark": cfg.benchmark, "best": rows[0], "rows": rows}))
    return 0


def cmd_select(args: argparse.Namespace) -> int:
    from .selection import SelectConfig, run_select

    cfg = SelectConfig(
        **_shared(args), **_fan_out(args), recipes=[r for r in (args.recipes or "").split(",") if r] or None,
        scenarios=[s for s in (args.scenarios or "").split(",") if s] or None, out=args.out,
        selected_file=args.selected_file, resume=args.resume, checkpoint_root=args.checkpoint_dir,
        command="avalanche-ext " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None,
    )
    summaries = run_select(cfg)
    for s in summaries:
        best = s["rows"][s["best"]] if s["best"] is not None else None
        chosen = ", ".join(f"{k}={best[k]}" for k in s["keys"]) if best else "nothing (failed runs)"
        print(f"{s['recipe']:26} {s['scenario']:6} {chosen}  record {s['record']}")
    print(f"selected settings written to {cfg.selected_file}", file=sys.stderr)
    failed = any(r["n_failed"] for s in summaries for r in s["rows"])
    return EXIT_FAILED if failed else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboards import write_pages

    for path in write_pages(args.root, out=args.out, references=args.references, fidelity=args.fidelity):
        print(f"wrote {path}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .logging import Tracking
    from .runs import close_stale

    if not args.close_stale:
        raise ValueError("runs: say what to do, e.g. --close-stale")
    if not args.stale_after > 0:
        raise ValueError(f"--stale-after must be > 0 seconds, got {args.stale_after}")
    closed = close_stale(Tracking.connect(args.tracking_uri), args.stale_after, dry_run=args.dry_run)
    verb = "would mark" if args.dry_run else "marked"
    for run_id, name, why in closed:
        print(f"{run_id} {name}: {verb} KILLED ({why})")
    print(f"{len(closed)} stale run(s) {verb} KILLED", file=sys.stderr)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from .runs import print_sync, spool_paths_default, sync

    results = sync(args.paths or spool_paths_default(), args.tracking_uri)
    print_sync(results)
    if not results:
        print("avalanche-ext: no spool to send", file=sys.stderr)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_reports

    label_a, label_b = args.labels or (args.report_a, args.report_b)
    path = compare_reports(args.report_a, args.report_b, label_a=label_a, label_b=label_b, out=args.out)
    print(path.read_text())
    print(f"written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avalanche-ext", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, log_model: bool = True) -> None:
        sp.add_argument("--benchmark", default="split_digits", help="benchmark name (see `avalanche-ext benchmarks`)")
        sp.add_argument("--n-experiences", type=int, default=None)
        sp.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
        sp.add_argument("--data-root", default=None, help="folder with raw data files (MNIST/raw, cifar-10-batches-py, ...)")
        sp.add_argument("--tracking-uri", default=None, help="MLflow URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
        sp.add_argument("--experiment", default="avalanche-ext", help="MLflow experiment name")
        sp.add_argument("--validation", action="store_true", help="evaluate on a split carved from training data")
        sp.add_argument("--online", action="store_true",
                        help="streaming protocol: each sample seen once, in mini-experiences of --online-size")
        sp.add_argument("--online-size", type=int, default=10, help="samples per online mini-experience")
        sp.add_argument("--tracking-retry-s", type=float, default=60.0, metavar="SECONDS",
                        help="how long a failing tracking store is retried before the run spools its records "
                             "locally (sent later with avalanche-ext sync)")
        sp.add_argument("--log-model", action=argparse.BooleanOptionalAction, default=log_model,
                        help="log the trained model to MLflow at the end of each run (default: on for run and "
                             "taxonomy; off for sweep and select, whose runs only choose settings)")
        from .devices import DEVICE_HELP

        speed = sp.add_argument_group(
            "device and speed", "where runs train and how fast data reaches them; the evaluation batch size is the "
            "hyper-parameter eval_batch_size (e.g. --set eval_batch_size=1024)")
        speed.add_argument("--device", default="auto", help=DEVICE_HELP)
        speed.add_argument("--amp", default=None, choices=["bf16", "fp16"],
                           help="automatic mixed precision: bf16 on CUDA or the CPU, fp16 (with loss scaling) on "
                                "CUDA; only for recipes that allow it")
        speed.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes (default 0)")
        speed.add_argument("--pin-memory", action=argparse.BooleanOptionalAction, default=None,
                           help="pinned host memory for batches (default: on when the device is CUDA)")

    def executor_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--executor", default="process", choices=["serial", "process", "ray"],
                        help="where runs execute: this process, a local process pool, or a Ray cluster")
        sp.add_argument("--workers", type=int, default=None,
                        help="processes of the pool (default min(2, cores)); with ray and no --address, CPUs of "
                             "the local Ray instance")
        sp.add_argument("--address", default=None,
                        help="Ray cluster to use (e.g. auto, or ray://head:10001); default: start a local instance")
        sp.add_argument("--cpus-per-task", type=int, default=1, help="CPUs (and torch threads) of each run on Ray")
        sp.add_argument("--gpus-per-run", type=float, default=None,
                        help="GPUs each run asks Ray for (fractions share a GPU, e.g. 0.25); default 1 when the "
                             "cluster has GPUs and --device is not cpu, else 0")

    sp = sub.add_parser("benchmarks", help="list benchmarks, whether their files are here and the layout they expect")
    sp.add_argument("--data-root", default=None)
    sp.add_argument("-v", "--verbose", action="store_true", help="say why data is missing")
    sp.set_defaults(func=cmd_benchmarks)

    sp = sub.add_parser("list", help="list recipes")
    sp.add_argument("--family", default=None)
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--settings", action="store_true",
                    help="each recipe's validation grid and the settings selected on it, with their record")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("run", help="run one recipe")
    sp.add_argument("recipe")
    common(sp)
    sp.add_argument("--scenario", default=None, choices=["class", "task", "domain"])
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyper-parameter")
    sp.add_argument("--threads", type=int, default=None, help="torch threads")
    sp.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    sp.add_argument("--checkpoint-dir", default=".avalanche-ext/checkpoints",
                    help="where the checkpoint written after every experience goes (removed when the run ends)")
    sp.add_argument("--no-checkpoint", action="store_true", help="write no checkpoint")
    sp.add_argument("--resume", action="store_true",
                    help="continue from the run's checkpoint (same recipe, benchmark, scenario, seed, settings)")
    sp.add_argument("--stop-after", type=int, default=None, metavar="N",
                    help="stop after N experiences, keeping the checkpoint (continue later with --resume)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("sweep", help="grid of hyper-parameters on the validation split; best first")
    sp.add_argument("recipe")
    common(sp, log_model=False)
    sp.add_argument("--scenario", default=None, choices=["class", "task", "domain"])
    sp.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="values to try (default: the recipe's declared grid)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed override")
    sp.add_argument("--seeds", type=int, default=1)
    executor_options(sp)
    sp.add_argument("--out", default=None, metavar="FILE.md",
                    help="also write the table, with the command that made it, as a Markdown record")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("select", help="every recipe's declared grid on the validation split (the same budget for "
                                       "all); writes records and the selected settings")
    common(sp, log_model=False)
    sp.add_argument("--recipes", default=None, help="comma-separated subset (default: every recipe)")
    sp.add_argument("--scenarios", default=None, help="comma-separated subset of class,task,domain")
    sp.add_argument("--seeds", type=int, default=2, help="seeds 0..K-1 of every configuration")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fixed override of every recipe that has it (not of a searched setting)")
    executor_options(sp)
    sp.add_argument("--out", default="docs/results/validation",
                    help="records go to OUT/<benchmark>/<recipe>_<scenario>.md, finished runs to OUT/<benchmark>/runs.csv")
    sp.add_argument("--selected-file", default="avalanche_ext_recipes/selected.json",
                    help="the selected-settings file to update")
    sp.add_argument("--checkpoint-dir", default=".avalanche-ext/select", help="checkpoints of unfinished runs")
    sp.add_argument("--resume", action="store_true",
                    help="reuse the runs OUT/<benchmark>/runs.csv already holds; continue unfinished ones from "
                         "their checkpoints")
    sp.set_defaults(func=cmd_select)

    sp = sub.add_parser("leaderboard", help="write the leaderboard of each benchmark and the fidelity page from "
                                            "the committed reports (runs nothing)")
    sp.add_argument("--root", default=".", help="the repository whose docs/results reports are read")
    sp.add_argument("--out", default="docs/results/leaderboards", help="folder of the leaderboard pages")
    sp.add_argument("--references", default="docs/results/references.yaml", help="the published numbers")
    sp.add_argument("--fidelity", default="docs/results/fidelity.md", help="the fidelity page to write")
    sp.set_defaults(func=cmd_leaderboard)

    sp = sub.add_parser("compare", help="two taxonomy reports side by side (e.g. from scratch vs pretrained)")
    sp.add_argument("report_a", help="folder of a taxonomy report (has summary.json)")
    sp.add_argument("report_b", help="folder of a second report on the same benchmark")
    sp.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names of the two settings in the table")
    sp.add_argument("--out", required=True, help="folder for comparison.md and its charts")
    sp.set_defaults(func=cmd_compare)

    sp = sub.add_parser("taxonomy", help="run every recipe in every supported scenario and write a report")
    common(sp)
    sp.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1")
    sp.add_argument("--family", default=None)
    sp.add_argument("--recipes", default=None, help="comma-separated subset")
    sp.add_argument("--scenarios", default=None, help="comma-separated subset of class,task,domain")
    sp.add_argument("--out", default=None, help="report folder (default reports/<benchmark>)")
    executor_options(sp)
    sp.add_argument("--progress", action="store_true", help="print per-epoch progress of every run")
    sp.add_argument("--resume", action="store_true",
                    help="reuse the runs the report in --out already finished; continue interrupted ones "
                         "from their checkpoints in <out>/checkpoints")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a hyper-parameter of every recipe that has it")
    sp.set_defaults(func=cmd_taxonomy)

    sp = sub.add_parser("runs", help="manage runs: --close-stale ends the runs left RUNNING by a dead process")
    sp.add_argument("--close-stale", action="store_true",
                    help="mark KILLED every RUNNING run whose process is gone or whose heartbeat is too old")
    sp.add_argument("--stale-after", type=float, default=300.0, metavar="SECONDS",
                    help="heartbeat age after which a run counts as dead (default 300)")
    sp.add_argument("--dry-run", action="store_true", help="only list them")
    sp.add_argument("--tracking-uri", default=None)
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("sync", help="send the records spooled while the tracking store was away")
    sp.add_argument("paths", nargs="*", help="spool files or folders to search (default .avalanche-ext)")
    sp.add_argument("--tracking-uri", default=None, help="send to this store instead of the spooled run's own")
    sp.set_defaults(func=cmd_sync)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ._warnings import quiet_deprecations

    quiet_deprecations()
    args = build_parser().parse_args(argv)
    from .benchmarks import DataNotFoundError, UnknownNameError
    from .checkpoint import CheckpointError
    from .executors import RayUnavailableError
    from .hparams import HParamError
    from .logging import TrackingUnavailableError
    from .recipe import UnsupportedScenarioError
    from .runner import RunInterrupted

    try:
        return args.func(args)
    except RunInterrupted as stop:
        print(_interrupted_line(stop, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("avalanche-ext: interrupted", file=sys.stderr)
        return 130
    except (UnknownNameError, UnsupportedScenarioError, HParamError, DataNotFoundError,
            TrackingUnavailableError, CheckpointError, RayUnavailableError, ValueError) as e:
        print(f"avalanche-ext: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
