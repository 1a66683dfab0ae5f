"""A refactor changes no result: three recipes per family give the recorded accuracy matrices.

The record was made with ``python scripts/behaviour_snapshot.py --out tests/fixtures/behaviour_split_digits.json``
before the code was restructured; the cases and the command line are the script's. Like the record, the
cases run with the recipes' own defaults: the settings selected on the validation split are set aside.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from behaviour_snapshot import CASES, command, same  # noqa: E402

from avalanche_ext.cli import main  # noqa: E402
from avalanche_ext.registry import NO_SELECTED_ENV, apply_selected_settings  # noqa: E402

RECORD = json.loads((Path(__file__).parent / "fixtures" / "behaviour_split_digits.json").read_text())


@pytest.fixture
def recipes_own_defaults(monkeypatch):
    monkeypatch.setenv(NO_SELECTED_ENV, "1")
    apply_selected_settings()
    yield
    monkeypatch.delenv(NO_SELECTED_ENV)
    apply_selected_settings()


@pytest.mark.usefixtures("recipes_own_defaults")
@pytest.mark.parametrize("recipe,scenario", CASES, ids=[f"{r}-{s}" for r, s in CASES])
def test_accuracy_matrix_is_unchanged(recipe, scenario, tmp_path, capsys):
    argv = command(recipe, scenario, f"sqlite:///{tmp_path}/mlflow.db")[1:]
    if "--no-log-model" in argv:
        argv.remove("--no-log-model")
    assert main(argv) == 0
    matrix = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["acc_matrix"]
    assert same(matrix, RECORD[f"{recipe}/{scenario}"]), f"{recipe}/{scenario}: {matrix}"
