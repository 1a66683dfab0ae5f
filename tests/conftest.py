import os
import warnings

import pytest
import torch

warnings.filterwarnings("ignore")
# Under pytest-xdist every worker gets one thread, so that workers do not oversubscribe the cores.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh MLflow store per test."""
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch, tmp_path):
    # Tests never write to the user's mlflow.db or ~/.cache.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AVALANCHE_EXT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _autocast_closed():
    """A test that fails inside an autocast region (AutocastPlugin opens it in before_forward) must not
    leave the rest of its worker's tests in reduced precision."""
    yield
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            torch.set_autocast_enabled(device, False)
