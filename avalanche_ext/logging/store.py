"""The MLflow tracking store: where it is, whether it answers, a client, an experiment.

:class:`Tracking` is the store of one command, resolved and checked once and then handed to
every part that writes to it (the run's logger, a taxonomy's parent run, a sweep's jobs).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""The store runs use when neither an argument nor ``MLFLOW_TRACKING_URI`` names one."""
_SQLITE = "sqlite:///"


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server cannot be reached."""


def resolve_tracking_uri(uri: Optional[str] = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory.

    A relative SQLite path is made absolute, so that worker processes started in another
    directory (a Ray worker, say) write to the same database.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return _SQLITE + os.path.abspath(uri[len(_SQLITE):])
    return uri


#: URI schemes MLflow has a tracking store for ("" is a plain path: a file store).
_SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")


def _writable_dir(path: Path) -> Optional[str]:
    """Why files cannot be created in ``path`` (or its nearest existing parent), or None if they can.

    The check creates a temporary file and removes it: it works for root too, where permission
    bits say nothing (a read-only file system, ``/proc``).
    """
    import tempfile

    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return f"cannot create files in {probe} ({e.strerror or e})"
    return None


def _check_local_store(uri: str, path: Path) -> None:
    """A SQLite database or file store at ``path``: its directory must be writable, and the database too."""
    problem = _writable_dir(path.parent if uri.startswith(_SQLITE) else path)
    if problem is None and uri.startswith(_SQLITE) and path.exists():
        try:
            with open(path, "r+b"):
                pass
        except OSError as e:
            problem = f"cannot write {path} ({e.strerror or e})"
    if problem:
        raise TrackingUnavailableError(f"cannot write the MLflow store {uri}: {problem}; pass a --tracking-uri "
                                       f"in a directory you can write, e.g. {DEFAULT_TRACKING_URI}")


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Refuse a tracking URI that cannot work, before anything is created.

    A URI whose scheme MLflow has no store for, or that is malformed (``htp:/x``,
    ``http:/x``, ``sqlite:/x``); a SQLite database or file store in a directory this user
    cannot write; an ``http(s)`` server that does not answer. Nothing is created here.

    Raises:
        TrackingUnavailableError: one of the above, with what to pass instead.
    """
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES or (scheme == "file" and parsed.netloc not in ("", "localhost")):
        raise TrackingUnavailableError(
            f"tracking URI {uri!r} is not one MLflow can use (scheme {scheme!r}); pass sqlite:///PATH.db, "
            f"http://HOST:PORT or a directory")
    if scheme in ("http", "https") and not parsed.hostname:
        raise TrackingUnavailableError(f"tracking URI {uri!r} has no host; pass {scheme}://HOST:PORT")
    if scheme == "sqlite":
        if not uri.startswith(_SQLITE) or len(uri) == len(_SQLITE):
            raise TrackingUnavailableError(f"tracking URI {uri!r} is malformed; a SQLite store is "
                                           f"sqlite:///relative/path.db or sqlite:////absolute/path.db")
        _check_local_store(uri, Path(uri[len(_SQLITE):]).expanduser())
    elif scheme in ("", "file"):
        _check_local_store(uri, Path(parsed.path if scheme == "file" else uri).expanduser())
    if scheme not in ("http", "https"):
        return
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).read()
    except (urllib.error.URLError, OSError, ValueError) as e:
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

    if not uri.startswith(_SQLITE):
        return MlflowClient(tracking_uri=uri)
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock (start concurrent runs on an existing store there)
        fcntl = None
    db = Path(uri[len(_SQLITE):]).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        client = MlflowClient(tracking_uri=uri)  # may create the store: inside the lock
        client.search_experiments(max_results=1)
    return client


def default_artifact_location(uri: str) -> Optional[str]:
    """Artifacts of a SQLite store live beside the database (``mlartifacts/``), not in the working directory."""
    if uri.startswith(_SQLITE):
        db = Path(uri[len(_SQLITE):]).expanduser().resolve()
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


#: Stores this process has checked, by resolved URI.
_CONNECTED: dict[str, "Tracking"] = {}


class Tracking:
    """One MLflow tracking store, resolved and health-checked once per process.

    Build it with :meth:`connect`; nothing is created in the store until :attr:`client` is
    first used, so a command can check the store before it validates anything else.

    Example:
        >>> tracking = Tracking.connect("sqlite:////tmp/mlflow.db")
        >>> exp_id = tracking.experiment_id("avalanche-ext")         # doctest: +SKIP

    Args:
        uri: a resolved tracking URI (see :func:`resolve_tracking_uri`).
    """

    def __init__(self, uri: str):
        self.uri = uri

    @classmethod
    def connect(cls, uri: Optional[str] = None) -> "Tracking":
        """The store at ``uri`` (resolved as :func:`resolve_tracking_uri` does); an ``http(s)`` server is
        checked the first time this process connects to it.

        Raises:
            TrackingUnavailableError: a malformed URI, an unwritable local store, or an
                ``http(s)`` server that does not answer (see :func:`check_tracking`).
        """
        resolved = resolve_tracking_uri(uri)
        tracking = _CONNECTED.get(resolved)
        if tracking is None:
            check_tracking(resolved)
            tracking = _CONNECTED[resolved] = cls(resolved)
        return tracking

    @cached_property
    def client(self) -> Any:
        """An ``MlflowClient`` of the store (a new SQLite store is created under a lock, see :func:`tracking_client`)."""
        return tracking_client(self.uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing."""
        return ensure_experiment(self.client, name, self.uri)

    def __repr__(self) -> str:
        return f"Tracking({self.uri!r})"
