"""An Avalanche logger that tracks a run in MLflow."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger

from ..functional import summarize

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_EXP_ACC = re.compile(r"^Top1_Acc_Exp/eval_phase/test_stream/Task\d+/Exp(\d+)$")
_PARAM_LIMIT = 6000


def resolve_tracking_uri(uri: Optional[str] = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory.

    A relative SQLite path is made absolute, so that worker processes started in another
    directory (a Ray worker, say) write to the same database.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server cannot be reached."""


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Fail fast when an ``http(s)`` tracking server does not answer (a local store is not created here)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).read()
    except (urllib.error.URLError, OSError) as e:
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking server at {uri} ({e}); start it, or pass "
            f"--tracking-uri {DEFAULT_TRACKING_URI} to track locally"
        ) from e


def tracking_client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``; a SQLite store is opened under a lock beside the database.

    MLflow creates and migrates a store's schema when a process first opens it; two processes
    doing that at once on a new database fail (``duplicate column name``). The lock file
    (``<db>.lock``) makes the first opener create the schema and the others wait for it. MLflow
    keeps the opened store for the process, so later clients of ``uri`` reuse it.
    """
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock (start concurrent runs on an existing store there)
        fcntl = None
    db = Path(uri[len("sqlite:///"):]).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)  # may create the store: inside the lock
        client.search_experiments(max_results=1)
    return client


def default_artifact_location(uri: str) -> Optional[str]:
    """Artifacts of a SQLite store live beside the database (``mlartifacts/``), not in the working directory."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):]).expanduser().resolve()
        return (db.parent / "mlartifacts").as_uri()
    return None


def ensure_experiment(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (with :func:`default_artifact_location`) if missing."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=default_artifact_location(uri))
    except MlflowException:
        exp = client.get_experiment_by_name(name)  # created by a concurrent run in between
        if exp is None:
            raise
        return exp.experiment_id


def describe_strategy(strategy: Any) -> dict[str, Any]:
    """Parameters describing a strategy: its class, model, optimizer and every plugin's settings."""
    from ..models import count_parameters

    params: dict[str, Any] = {
        "strategy": type(strategy).__name__,
        "model": type(strategy.model).__name__,
        "model.n_params": count_parameters(strategy.model),
        "train_mb_size": getattr(strategy, "train_mb_size", None),
        "train_epochs": getattr(strategy, "train_epochs", None),
    }
    opt = getattr(strategy, "optimizer", None)
    if opt is not None:
        params["optimizer"] = type(opt).__name__
        for k, v in opt.defaults.items():
            if isinstance(v, (int, float, str, bool)):
                params[f"optimizer.{k}"] = v
    names = []
    for plugin in getattr(strategy, "plugins", []):
        name = type(plugin).__name__
        if name in ("EvaluationPlugin", "MLflowLogger", "ProgressLogger", "FiniteLossGuard", "Clock"):
            continue
        names.append(name)
        for k, v in getattr(plugin, "__dict__", {}).items():
            if not k.startswith("_") and isinstance(v, (int, float, str, bool)) and v is not None:
                params[f"plugin.{name}.{k}"] = v
    params["plugins"] = ",".join(names) or "none"
    return params


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("avalanche-ext", "avalanche-lib", "torch", "torchvision", "numpy", "mlflow"):
        try:
            out[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            out[f"version.{pkg}"] = "not installed"
    return out


class MLflowLogger(BaseLogger, SupervisedPlugin):
    """Track an Avalanche run in MLflow: parameters, every metric, the accuracy matrix.

    Pass it to an ``EvaluationPlugin``; it receives every metric with its step and the
    strategy callbacks. It logs the strategy's description (class, model, optimizer,
    every plugin's settings) and package versions at the start of training, the final
    accuracy matrix (as ``acc_matrix/...`` metrics, a JSON and a PNG heatmap) when
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
        tracking_uri: defaults to ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
        params: extra parameters to log at start (benchmark, seed, ...).
        tags: tags of the run.
        parent_run_id: make this run a nested child of that run.
        run_id: continue an existing run (resume) instead of creating one.
    """

    def __init__(
        self,
        experiment_name: str = "avalanche-ext",
        run_name: Optional[str] = None,
        tracking_uri: Optional[str] = None,
        params: Optional[dict[str, Any]] = None,
        tags: Optional[dict[str, str]] = None,
        parent_run_id: Optional[str] = None,
        run_id: Optional[str] = None,
    ):
        BaseLogger.__init__(self)
        SupervisedPlugin.__init__(self)
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        check_tracking(self.tracking_uri)
        self.client = tracking_client(self.tracking_uri)
        self.experiment_name = experiment_name
        self.accuracy_matrix: dict[int, dict[int, float]] = {}
        self._row: dict[int, float] = {}
        self._pending: list = []
        self._params_logged = run_id is not None
        self._closed = False
        if run_id is None:
            exp_id = ensure_experiment(self.client, experiment_name, self.tracking_uri)
            all_tags = dict(tags or {})
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = self.client.create_run(exp_id, run_name=run_name, tags=all_tags)
            self.run_id = run.info.run_id
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
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def matrix(self) -> list[list[float]]:
        """The accuracy matrix seen so far (rows: training steps, columns: experiences)."""
        rows = [self.accuracy_matrix[i] for i in sorted(self.accuracy_matrix)]
        n_cols = max((max(r) + 1 for r in rows if r), default=0)
        return [[r.get(j, float("nan")) for j in range(n_cols)] for r in rows]

    def close(self, status: str = "FINISHED") -> None:
        """Log the accuracy matrix and its summaries, then end the run with ``status``."""
        if self._closed:
            return
        self.flush()
        matrix = self.matrix()
        if matrix and status == "FINISHED":
            self._log_matrix(matrix)
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
            self.client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
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
        match = _EXP_ACC.match(name)
        if match:
            self._row[int(match.group(1))] = float(value)

    def before_training(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        if not self._params_logged:
            self.log_params({**describe_strategy(strategy), **package_versions()})
            self._params_logged = True

    def before_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self._row = {}

    def after_eval(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        trained = strategy.clock.train_exp_counter
        if self._row and trained > 0:
            self.accuracy_matrix[trained - 1] = dict(self._row)
        self.flush()

    def after_training_epoch(self, strategy: Any, *args: Any, **kwargs: Any) -> None:
        self.flush()

    # ----- helpers -------------------------------------------------------------------
    def _log_matrix(self, matrix: list[list[float]]) -> None:
        from ..report.plots import accuracy_heatmap

        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                self.log_metric(f"acc_matrix/after_exp{i:03d}/exp{j:03d}", v, step=i)
        for key, value in summarize(matrix).items():
            self.log_metric(f"final/{key}", value)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "accuracy_matrix.json").write_text(json.dumps(matrix))
            accuracy_heatmap(matrix, Path(tmp) / "accuracy_matrix.png", title="accuracy matrix")
            self.log_artifact(Path(tmp) / "accuracy_matrix.json")
            self.log_artifact(Path(tmp) / "accuracy_matrix.png")
