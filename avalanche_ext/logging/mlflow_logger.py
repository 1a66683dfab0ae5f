"""An Avalanche logger that tracks a run in MLflow."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger

from .describe import describe_strategy, package_versions
from .matrix import AccuracyMatrix
from .resilient import TrackingLostError
from .shield import shielded
from .store import Tracking
from .writer import RunWriter

_PARAM_LIMIT = 6000
_TAG_LIMIT = 5000

#: Tags of a live run: the time of its last sign of life, its process and machine (see ``avalanche-ext runs``).
HEARTBEAT_TAG = "avalanche_ext.heartbeat"
PID_TAG = "avalanche_ext.pid"
HOST_TAG = "avalanche_ext.host"
#: Seconds between two heartbeats (also written at the end of every epoch).
HEARTBEAT_S = 30.0
#: The default retry budget of a logger, in seconds.
RETRY_BUDGET_S = 60.0


class MLflowLogger(BaseLogger, SupervisedPlugin):
    """Track an Avalanche run in MLflow: parameters, every metric, the accuracy matrix.

    Pass it to an ``EvaluationPlugin``; it receives every metric with its step and the
    strategy callbacks. It logs the strategy's description (class, model, optimizer,
    every plugin's settings) and package versions at the start of training, the final
    accuracy matrix (as ``acc_matrix/...`` and ``final/...`` metrics and a JSON file) when
    closed, and ends the run as FAILED with the traceback if training raises inside
    its ``with`` block.

    A store that fails is retried for ``retry_budget_s`` seconds per call; past that the logger
    goes offline and keeps every later record (metrics, parameters, tags, artifacts, the final
    status) in a local spool (:attr:`spool_path`) that ``avalanche-ext sync`` replays. A logger
    that continues a run (``run_id``) skips the metric points that run already has (same key,
    step not after the last one logged), so that the steps a resumed run trains again are not
    logged twice. The run carries a heartbeat tag (:data:`HEARTBEAT_TAG`, refreshed every
    :data:`HEARTBEAT_S` seconds and at each epoch) and the process id and host that write it.

    Example:
        >>> from avalanche.evaluation.metrics import accuracy_metrics
        >>> from avalanche.training.plugins import EvaluationPlugin
        >>> with MLflowLogger(run_name="demo", tracking_uri="sqlite:///mlflow.db") as logger:
        ...     evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[logger])
        ...     # strategy = Naive(..., evaluator=evaluator); train and eval as usual

    Args:
        experiment_name: MLflow experiment (created if missing).
        run_name: name of the run.
        tracking_uri: a URI (default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``), or a
            :class:`~avalanche_ext.logging.Tracking` store already connected.
        params: extra parameters to log at start (benchmark, seed, ...).
        tags: tags of the run.
        parent_run_id: make this run a nested child of that run.
        run_id: continue an existing run (resume) instead of creating one.
        retry_budget_s: how long one call to the store may keep failing before the logger spools.
        spool_path: where the spool goes if the store fails (default
            ``.avalanche-ext/spool/<run id>.jsonl``); a callable gets the run id.

    Raises:
        TrackingUnavailableError: an ``http(s)`` tracking server does not answer.
    """

    def __init__(
        self,
        experiment_name: str = "avalanche-ext",
        run_name: Optional[str] = None,
        tracking_uri: Optional[str | Tracking] = None,
        params: Optional[dict[str, Any]] = None,
        tags: Optional[dict[str, str]] = None,
        parent_run_id: Optional[str] = None,
        run_id: Optional[str] = None,
        retry_budget_s: float = RETRY_BUDGET_S,
        spool_path: Optional[str | Path | Callable[[Optional[str]], Path]] = None,
    ):
        BaseLogger.__init__(self)
        SupervisedPlugin.__init__(self)
        self.tracking = tracking_uri if isinstance(tracking_uri, Tracking) else Tracking.connect(tracking_uri)
        self.tracking_uri = self.tracking.uri
        self.experiment_name = experiment_name
        self.accuracy = AccuracyMatrix()
        self._pending: list = []
        self._params_logged = run_id is not None
        self._closed = False
        self._beat = 0.0
        #: metric key -> the last step the continued run already has (points up to it are skipped).
        self.logged_steps: dict[str, int] = {}
        all_tags = {**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        self.writer = RunWriter(self.tracking, retry_budget_s, _spool_location(spool_path),
                                {"experiment": experiment_name, "run_name": run_name, "tags": all_tags})
        self.run_id: Optional[str] = run_id
        if run_id is None:
            self.run_id = self.writer.ask(self._create, experiment_name, run_name, all_tags)
        else:
            run = self.writer.ask(self.client.get_run, run_id)
            if run is not None:
                self.logged_steps = {m.key: int(m.step) for m in run.data._metric_objs}
            self.writer.send(lambda _: {"op": "status", "status": "RUNNING"},
                             self.client.update_run, run_id, status="RUNNING")
            for key in (PID_TAG, HOST_TAG):
                self.set_tag(key, all_tags[key])
        self.writer.run_id = self.run_id
        if params:
            self.log_params(params)
        self.heartbeat(force=True)

    @property
    def client(self) -> Any:
        return self.tracking.client

    @property
    def spool_path(self) -> Optional[Path]:
        """The spool file, once the store has failed past the retry budget (None while it answers)."""
        return self.writer.spool.path if self.writer.spool is not None else None

    @property
    def offline_reason(self) -> Optional[str]:
        """Why the logger writes to its spool (None while the store answers)."""
        return self.writer.offline_reason

    def _create(self, experiment_name: str, run_name: Optional[str], tags: dict[str, str]) -> str:
        exp_id = self.tracking.experiment_id(experiment_name)
        return self.client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id

    # ----- direct API -------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters (values are stringified and truncated to MLflow's limit)."""
        from mlflow.entities import Param

        run = self.writer.ask(self.client.get_run, self.run_id) if self.run_id else None
        existing = run.data.params if run is not None else {}
        batch = {str(k): str(v)[:_PARAM_LIMIT] for k, v in params.items() if v is not None and str(k) not in existing}
        items = list(batch.items())
        for i in range(0, len(items), 100):
            chunk = dict(items[i : i + 100])
            self.writer.send(lambda _, c=chunk: {"op": "params", "params": c}, self.client.log_batch, self.run_id,
                             params=[Param(k, v) for k, v in chunk.items()])

    def set_tag(self, key: str, value: Any) -> None:
        """Set tag ``key`` of the run to ``str(value)`` (truncated to MLflow's limit)."""
        text = str(value)[:_TAG_LIMIT]
        self.writer.send(lambda _: {"op": "tag", "key": key, "value": text}, self.client.set_tag, self.run_id, key, text)

    def heartbeat(self, force: bool = False) -> None:
        """Refresh the heartbeat tag if :data:`HEARTBEAT_S` seconds have passed (or ``force``); not spooled."""
        now = time.time()
        if self.writer.offline or self.run_id is None or (not force and now - self._beat < HEARTBEAT_S):
            return
        self._beat = now
        try:
            self.writer.calls(self.client.set_tag, self.run_id, HEARTBEAT_TAG, f"{now:.0f}")
        except TrackingLostError as e:
            self.writer.go_offline(str(e))

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """Queue one metric; queued metrics are written in batches. A point the continued run already
        has (see :attr:`logged_steps`) is skipped."""
        from mlflow.entities import Metric

        if key in self.logged_steps and int(step) <= self.logged_steps[key]:
            return
        self._pending.append(Metric(key, float(value), int(time.time() * 1000), int(step)))
        if len(self._pending) >= 500:
            self.flush()

    def flush(self) -> None:
        """Write the queued metrics (a batch leaves the queue only once it is sent or spooled)."""
        while self._pending:
            chunk = self._pending[:900]
            with shielded():  # a stop signal waits until the sent batch has left the queue
                self.writer.send(lambda _: {"op": "metrics", "metrics": [[m.key, m.value, m.timestamp, m.step]
                                                                          for m in chunk]},
                                 self.client.log_batch, self.run_id, metrics=chunk)
                del self._pending[: len(chunk)]

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload the file at ``path`` to the run's artifacts (under ``artifact_path`` if given)."""
        self.writer.send(lambda spool: {"op": "artifact", "file": spool.keep(path), "artifact_path": artifact_path},
                         self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_artifacts(self, local_dir: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload the folder ``local_dir`` to the run's artifacts (under ``artifact_path`` if given)."""
        self.writer.send(lambda spool: {"op": "artifacts", "dir": spool.keep(local_dir), "artifact_path": artifact_path},
                         self.client.log_artifacts, self.run_id, str(local_dir), artifact_path)

    def log_dataset(self, name: str, digest: str, source: dict[str, Any], context: str = "train") -> None:
        """Record a dataset input of the run (name, digest and a description of its source)."""
        from .datasets import dataset_inputs, dataset_record

        record = dataset_record(name, digest, source, context)
        self.writer.send(lambda _: {"op": "inputs", "datasets": [record]}, self.client.log_inputs, self.run_id,
                         datasets=dataset_inputs([record]))

    def matrix(self) -> list[list[float]]:
        """The accuracy matrix seen so far (rows: training steps, columns: experiences)."""
        return self.accuracy.as_lists()

    def _terminate(self, status: str) -> None:
        self.writer.send(lambda _: {"op": "end", "status": status}, self.client.set_terminated, self.run_id,
                         status=status)
        self._closed = True

    def close(self, status: str = "FINISHED") -> None:
        """Log the accuracy matrix and its summaries (if the run finished), then end the run with ``status``."""
        if self._closed:
            return
        self.flush()
        matrix = self.matrix()
        if matrix and status == "FINISHED":
            for key, value, step in self.accuracy.metrics():
                self.log_metric(key, value, step)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "accuracy_matrix.json"
                path.write_text(json.dumps(matrix))
                self.log_artifact(path)
        self.flush()
        self._terminate(status)

    def fail(self, error: BaseException) -> None:
        """End the run as FAILED, keeping the error text as a tag and an artifact."""
        if self._closed:
            return
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        try:
            self.flush()
            self.set_tag("error", f"{type(error).__name__}: {error}")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "error.txt"
                path.write_text(text)
                self.log_artifact(path)
        finally:
            self._terminate("FAILED")

    def __enter__(self) -> "MLflowLogger":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self.fail(exc)
        else:
            self.close()
        return False

    # ----- Avalanche logger protocol -------------------------------------------------
    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        from avalanche.evaluation.metric_results import AlternativeValues

        if isinstance(value, AlternativeValues):
            value = value.best_supported_value(float, int)
        if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
            value = value.item()
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        self.log_metric(name, value, x_plot)
        self.accuracy.observe(name, value)

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if not self._params_logged:
            self.log_params({**describe_strategy(strategy), **package_versions()})
            self._params_logged = True

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.accuracy.start_eval()

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.accuracy.end_eval(strategy.clock.train_exp_counter)
        self.flush()

    def after_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.flush()
        self.heartbeat(force=True)

    def after_training_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.heartbeat()

    def after_eval_iteration(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.heartbeat()


def _spool_location(spool_path: Optional[str | Path | Callable[[Optional[str]], Path]]) -> Callable[[Optional[str]], Path]:
    if callable(spool_path):
        return spool_path
    if spool_path is not None:
        return lambda _run_id: Path(spool_path)
    return lambda run_id: Path(".avalanche-ext", "spool", f"{run_id or 'run-' + str(os.getpid())}.jsonl").resolve()
