"""One tracked, resumable run of one recipe: the single place where a run starts, ends and records its status."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from ..benchmarks import build_benchmark
from ..checkpoint import CheckpointError, CheckpointMismatchError, capture_state, describe_difference
from ..devices import concrete_device, resolve_device
from ..functional import summarize
from ..logging import AccuracyMatrix, MLflowLogger, ProgressLogger, Tracking
from ..logging.liveness import close_run, looks_alive
from ..logging.shield import shielded
from ..plugins import FiniteLossGuard
from ..protocols import collect_memory_reports
from ..recipe import RecipeContext
from .config import KILL_AFTER_ENV, RunConfig
from .interrupt import RunInterrupted, StopWatch, ignore_interrupts, interrupts_raise
from .loop import last_task_inference_acc, make_evaluator, peak_rss_mb, seed_everything, training_steps
from .model_export import log_dataset, log_trained_model
from .plan import checkpoint_stem, checkpointer, run_name, run_params, validate


class TrackedRun:
    """One run of one recipe, tracked in MLflow and resumable from its checkpoint.

    Creating it checks the whole configuration and connects the tracking store (an
    ``http(s)`` server must answer), and creates nothing: no data is loaded, no store or
    MLflow run is made. :meth:`execute` then loads the stream, starts the MLflow run (or,
    with ``cfg.resume``, continues the one of the checkpoint), builds the recipe's strategy,
    logs its memory reports, trains experience by experience and evaluates on the whole test
    stream after each, writing a checkpoint after every evaluated step, and ends the MLflow
    run with its status:

    * ``FINISHED``: trained to the end; the accuracy matrix, its heatmap, the training time
      and peak memory are logged and the checkpoint is removed;
    * ``KILLED``: stopped as asked after ``cfg.stop_after`` steps, or interrupted by SIGINT,
      SIGTERM or ``cfg.stop_file`` (:class:`RunInterrupted` is raised after the run is ended,
      with the run id and the checkpoint to resume from); the checkpoint is kept;
    * ``FAILED``: training raised; the error is logged and the last checkpoint is kept.

    With ``cfg.log_model`` the trained model is logged as ``model`` (see
    :mod:`avalanche_ext.runner.model_export`); the benchmark is the run's dataset input.

    A run started again without ``resume`` over the checkpoint of an unfinished one, or over
    the checkpoint of a run of the same recipe, benchmark, scenario and seed with other
    settings, ends that one's MLflow run as ``KILLED`` first (tag ``killed_reason``), unless
    its process is still alive. Fault injection (:data:`KILL_AFTER_ENV`) kills the process
    right after a checkpoint, as a crashed machine would. A tracking store that fails past
    ``cfg.tracking_retry_s`` does not stop training: the rest goes to a spool beside the
    checkpoint (the result's ``tracking_spool``).

    Example:
        >>> result = TrackedRun(RunConfig("ewc", n_experiences=3, epochs=1)).execute()  # doctest: +SKIP
        >>> result["acc"], result["mlflow_run_id"]                                      # doctest: +SKIP

    Args:
        cfg: what to run.
        tracking: the tracking store, already connected (default: ``Tracking.connect(cfg.tracking_uri)``).

    Raises:
        UnknownNameError, UnsupportedScenarioError, HParamError, ValueError: a bad configuration.
        TrackingUnavailableError: the tracking URI is malformed, its store unwritable, or its server does not answer.
        CheckpointMismatchError: ``resume`` over a checkpoint of the same run made with other settings.
        RunInterrupted: from :meth:`execute`, after the run was ended KILLED.
    """

    def __init__(self, cfg: RunConfig, tracking: Optional[Tracking] = None):
        self.cfg = cfg
        self.plan = validate(cfg)
        self.device = resolve_device(cfg.device)  # checked by validate; "cuda" gets its index in execute
        self.tracking = tracking or Tracking.connect(cfg.tracking_uri)
        self.checkpoint = checkpointer(cfg, self.plan)
        self.name = run_name(cfg, self.plan)
        self.logger: Optional[MLflowLogger] = None
        #: how the MLflow run ended (``FINISHED``, ``KILLED`` or ``FAILED``); None while it runs.
        self.status: Optional[str] = None

    # ----- the run, start to end -----------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        """Run to the end (or to ``cfg.stop_after``) and return the result record of ``avalanche-ext run --json``."""
        with interrupts_raise():
            return self._execute()

    def _execute(self) -> dict[str, Any]:
        cfg = self.cfg
        self._check_stop_file()
        self.device = concrete_device(self.device)
        saved = self._saved_checkpoint()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        stream = build_benchmark(cfg.benchmark, self.plan.scenario, n_experiences=cfg.n_experiences, seed=cfg.seed,
                                 data_root=cfg.data_root, validation=cfg.validation)
        seed_everything(cfg.seed)
        try:
            self._start(stream, saved)
            strategy = self._build(stream)
            done, train_s = self._restore(strategy, saved) if saved else (0, 0.0)
            train_s, stopped = self._train(strategy, stream, done, train_s)
            return self._finish(strategy, stream, train_s, stopped, resumed_from=done if saved else None)
        except RunInterrupted as stop:
            self._interrupted(stop)
            raise
        except KeyboardInterrupt:  # SIGINT outside the main thread's handler
            stop = RunInterrupted(signal.SIGINT)
            self._interrupted(stop)
            raise stop from None
        except BaseException as error:
            self._end("FAILED", error)
            raise

    def _start(self, stream: Any, saved: Optional[dict[str, Any]]) -> None:
        """Create the MLflow run, or continue the checkpoint's."""
        cfg, plan = self.cfg, self.plan
        with shielded():  # a stop signal waits until the run exists and self.logger can end it
            self.logger = MLflowLogger(
                cfg.experiment, self.name, self.tracking,
                params={**run_params(cfg, plan, stream.n_experiences), "device": str(self.device), "amp": cfg.amp},
                tags={"recipe": plan.recipe.name, "benchmark": cfg.benchmark, "scenario": plan.scenario},
                parent_run_id=cfg.parent_run_id, run_id=saved["progress"]["mlflow_run_id"] if saved else None,
                retry_budget_s=cfg.tracking_retry_s, spool_path=self._spool_path,
            )
        if not saved:
            log_dataset(self.logger, stream, cfg.benchmark, stream.n_experiences)

    def _spool_path(self, run_id: Optional[str]) -> Path:
        """Where the run's spool goes: beside its checkpoint, else ``.avalanche-ext/spool/<run id>.jsonl``."""
        if self.checkpoint is not None:
            return self.checkpoint.path.with_suffix(".spool.jsonl").resolve()
        return Path(".avalanche-ext", "spool", f"{run_id or self.name.replace('/', '-')}.jsonl").resolve()

    def _end(self, status: str, error: Optional[BaseException] = None) -> None:
        """End the MLflow run with ``status`` (with ``error``: FAILED, the error logged)."""
        if self.status is not None or self.logger is None:
            return
        if error is not None:
            self.logger.fail(error)
        else:
            self.logger.close(status=status)
        self.status = status

    def _interrupted(self, stop: RunInterrupted) -> None:
        """End the run as KILLED after SIGINT, SIGTERM or the stop file; ``stop`` learns what to tell the user."""
        ignore_interrupts()
        if self.logger is not None and self.status is None:
            self.logger.set_tag("killed_reason", f"interrupted by {stop.why}")
            self._end("KILLED")
        stop.run_id = self.logger.run_id if self.logger is not None else None
        stop.checkpoint = str(self.checkpoint.path) if self.checkpoint is not None and self.checkpoint.exists() else None
        stop.spool = self.logger.spool_path if self.logger is not None else None

    def _check_stop_file(self) -> None:
        if self.cfg.stop_file and os.path.exists(self.cfg.stop_file):
            raise RunInterrupted(signal.SIGTERM, f"stop file {self.cfg.stop_file}")

    # ----- steps -------------------------------------------------------------------------------
    def _saved_checkpoint(self) -> Optional[dict[str, Any]]:
        """The checkpoint to resume from (with ``cfg.resume``); without, the MLflow runs of the run's old
        checkpoints (same settings, or other ones) are ended.

        Raises:
            CheckpointMismatchError: ``resume``, no checkpoint of these settings, but one of other settings.
        """
        ckpt = self.checkpoint
        if ckpt is None:
            return None
        others = sorted((p for p in ckpt.path.parent.glob(f"{checkpoint_stem(self.cfg, self.plan)}-*.ckpt")
                         if p != ckpt.path), key=lambda p: p.stat().st_mtime, reverse=True)
        if ckpt.exists() and self.cfg.resume:
            return ckpt.load()
        if self.cfg.resume and others:
            saved = ckpt.identity_of(others[0])["identity"]
            raise CheckpointMismatchError(
                f"{others[0]} belongs to another run ({describe_difference(saved, ckpt.identity)}); drop --resume to "
                f"start again with these settings, or resume with the checkpoint's")
        if ckpt.exists():
            self._close_abandoned(ckpt.path, "started again without --resume")
        for other in others:
            self._close_abandoned(other, "started again with other settings")
        return None

    def _build(self, stream: Any) -> Any:
        """The recipe's strategy, with the run's evaluator and loss guard; its memory reports are logged."""
        cfg, plan = self.cfg, self.plan
        loggers: list = [self.logger]
        if cfg.progress:
            loggers.append(ProgressLogger(self.name, n_experiences=stream.n_experiences))
        plugins: list = [FiniteLossGuard()]
        if cfg.stop_file:
            plugins.append(StopWatch(cfg.stop_file))
        ctx = RecipeContext(stream, plan.hp, make_evaluator(loggers), plugins=plugins, seed=cfg.seed,
                            device=self.device, amp=cfg.amp, num_workers=cfg.num_workers, pin_memory=cfg.pin_memory)
        self.loader_args = ctx.loader_args()
        strategy = plan.recipe.build(ctx)
        self.logger.log_params(collect_memory_reports(strategy))
        if self.checkpoint is not None:
            capture_state(strategy)  # fails now, not after the first experience, if it cannot be saved
        return strategy

    def _restore(self, strategy: Any, saved: dict[str, Any]) -> tuple[int, float]:
        """Put the checkpoint into ``strategy``; returns the training steps done and their time."""
        progress = self.checkpoint.restore(strategy, saved)
        done = progress["steps"]
        self.logger.accuracy = AccuracyMatrix(progress["matrix"])
        self.logger.set_tag("resumed_from_step", done)
        if self.cfg.parent_run_id:
            self.logger.set_tag("mlflow.parentRunId", self.cfg.parent_run_id)
        print(f"{self.name}: resuming after training step {done} from {self.checkpoint.path}", flush=True)
        return done, progress["train_s"]

    def _train(self, strategy: Any, stream: Any, done: int, train_s: float) -> tuple[float, bool]:
        """Train the steps after ``done``, evaluating and checkpointing after each; returns (time, stopped)."""
        cfg = self.cfg
        if self.plan.recipe.trains_once:
            t0 = time.perf_counter()
            strategy.train(stream.train_stream, **self.loader_args)
            train_s += time.perf_counter() - t0
            strategy.eval(stream.test_stream, **self.loader_args)
            return train_s, False
        writer = self.checkpoint
        steps = list(training_steps(stream, cfg.online, cfg.online_size))
        for step, (exp, ends_experience) in enumerate(steps, 1):
            if step <= done:
                continue
            t0 = time.perf_counter()
            strategy.train(exp, **self.loader_args)
            train_s += time.perf_counter() - t0
            if not ends_experience:
                continue
            strategy.eval(stream.test_stream, **self.loader_args)
            if writer is None or step == len(steps):
                continue
            try:
                writer.save(strategy, {"steps": step, "train_s": train_s, "matrix": self.logger.accuracy.rows,
                                       "mlflow_run_id": self.logger.run_id})
            except CheckpointError as e:  # keep training: losing the checkpoint must not lose the run
                warnings.warn(f"{self.name}: no more checkpoints for this run: {e}", stacklevel=1)
                self.logger.set_tag("checkpoint_error", e)
                writer = None
                continue
            self._maybe_kill(step)
            if cfg.stop_after is not None and step >= cfg.stop_after:
                return train_s, True
        return train_s, False

    def _finish(self, strategy: Any, stream: Any, train_s: float, stopped: bool,
                resumed_from: Optional[int]) -> dict[str, Any]:
        """Log the outcome, end the MLflow run and return the result record."""
        cfg, plan = self.cfg, self.plan
        matrix = self.logger.matrix()
        summary = summarize(matrix)
        rss = peak_rss_mb()
        if stopped:
            self.logger.set_tag("stopped_after_step", cfg.stop_after)
            self._end("KILLED")
        else:
            self.logger.log_metric("train_s", train_s)
            self.logger.log_metric("peak_rss_mb", rss)
            self._log_heatmap(matrix)
            if cfg.log_model:
                self._log_model(strategy, stream)
            self._end("FINISHED")
            if self.checkpoint is not None:
                self.checkpoint.remove()
        return {
            "recipe": plan.recipe.name, "family": plan.recipe.family, "benchmark": cfg.benchmark,
            "scenario": plan.scenario, "seed": cfg.seed, "online": cfg.online, "device": str(self.device),
            **summary, "acc_matrix": matrix,
            "task_inference_acc": last_task_inference_acc(strategy),
            "train_s": train_s, "peak_rss_mb": rss, "mlflow_run_id": self.logger.run_id,
            "resumed_from_step": resumed_from, "stopped": stopped,
            "tracking_spool": str(self.logger.spool_path) if self.logger.spool_path else None,
            "tracking_error": self.logger.offline_reason,
        }

    # ----- helpers -------------------------------------------------------------------------------
    def _log_heatmap(self, matrix: list[list[float]]) -> None:
        """The accuracy matrix as a heatmap, ``accuracy_matrix.png`` among the run's artifacts."""
        if not matrix:
            return
        from ..report.plots import accuracy_heatmap

        with tempfile.TemporaryDirectory() as tmp:
            self.logger.log_artifact(accuracy_heatmap(matrix, Path(tmp) / "accuracy_matrix.png",
                                                      title="accuracy matrix"))

    def _log_model(self, strategy: Any, stream: Any) -> None:
        """Log the trained model; a model that cannot be logged is a warning and a tag, not a failed run."""
        try:
            log_trained_model(self.logger, strategy, stream)
        except Exception as e:  # noqa: BLE001 - the training is done: keep its results
            warnings.warn(f"{self.name}: the trained model was not logged: {type(e).__name__}: {e}", stacklevel=1)
            self.logger.set_tag("model_error", f"{type(e).__name__}: {e}")

    def _close_abandoned(self, path: Path, why: str) -> None:
        """End the MLflow run of the old checkpoint at ``path`` as KILLED, unless its process is alive."""
        try:
            saved = self.checkpoint.identity_of(path)
            run_id = saved["progress"]["mlflow_run_id"]
        except Exception:  # noqa: BLE001 - an unreadable checkpoint: nothing of ours to close
            return
        if why.endswith("other settings"):
            why += f" ({describe_difference(saved['identity'], self.checkpoint.identity)})"
        client = self.tracking.client
        try:
            run = client.get_run(run_id)
            if run.info.status == "RUNNING" and not looks_alive(run):
                client.set_tag(run_id, "abandoned", why)
                close_run(client, run_id, why)
        except Exception:  # noqa: BLE001 - the run may live in another tracking store
            pass

    def _maybe_kill(self, step: int) -> None:
        """Die like a crashed machine after checkpoint ``step`` if fault injection asks for it (see KILL_AFTER_ENV)."""
        if self.cfg.resume:
            return
        if self.cfg.kill_after == step or os.environ.get(KILL_AFTER_ENV) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
