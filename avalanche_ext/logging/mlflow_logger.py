"""An Avalanche logger that tracks a run in MLflow."""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger

from .describe import describe_strategy, package_versions
from .matrix import AccuracyMatrix
from .store import Tracking

_PARAM_LIMIT = 6000
_TAG_LIMIT = 5000


class MLflowLogger(BaseLogger, SupervisedPlugin):
    """Track an Avalanche run in MLflow: parameters, every metric, the accuracy matrix.

    Pass it to an ``EvaluationPlugin``; it receives every metric with its step and the
    strategy callbacks. It logs the strategy's description (class, model, optimizer,
    every plugin's settings) and package versions at the start of training, the final
    accuracy matrix (as ``acc_matrix/...`` and ``final/...`` metrics and a JSON file) when
    closed, and ends the run as FAILED with the traceback if training raises inside
    its ``with`` block.

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
    ):
        BaseLogger.__init__(self)
        SupervisedPlugin.__init__(self)
        self.tracking = tracking_uri if isinstance(tracking_uri, Tracking) else Tracking.connect(tracking_uri)
        self.tracking_uri = self.tracking.uri
        self.client = self.tracking.client
        self.experiment_name = experiment_name
        self.accuracy = AccuracyMatrix()
        self._pending: list = []
        self._params_logged = run_id is not None
        self._closed = False
        if run_id is None:
            exp_id = self.tracking.experiment_id(experiment_name)
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            self.run_id = self.client.create_run(exp_id, run_name=run_name, tags=all_tags).info.run_id
        else:
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
        if params:
            self.log_params(params)

    # ----- direct API -------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        """Log parameters (values are stringified and truncated to MLflow's limit)."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        batch = [
            Param(str(k), str(v)[:_PARAM_LIMIT])
            for k, v in params.items()
            if v is not None and str(k) not in existing
        ]
        for i in range(0, len(batch), 100):
            self.client.log_batch(self.run_id, params=batch[i : i + 100])

    def set_tag(self, key: str, value: Any) -> None:
        """Set tag ``key`` of the run to ``str(value)`` (truncated to MLflow's limit)."""
        self.client.set_tag(self.run_id, key, str(value)[:_TAG_LIMIT])

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """Queue one metric; queued metrics are written in batches."""
        from mlflow.entities import Metric

        self._pending.append(Metric(key, float(value), int(time.time() * 1000), int(step)))
        if len(self._pending) >= 500:
            self.flush()

    def flush(self) -> None:
        """Write the queued metrics."""
        while self._pending:
            chunk, self._pending = self._pending[:900], self._pending[900:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload the file at ``path`` to the run's artifacts (under ``artifact_path`` if given)."""
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def matrix(self) -> list[list[float]]:
        """The accuracy matrix seen so far (rows: training steps, columns: experiences)."""
        return self.accuracy.as_lists()

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
        self.client.set_terminated(self.run_id, status=status)
        self._closed = True

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
            self.client.set_terminated(self.run_id, status="FAILED")
            self._closed = True

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
