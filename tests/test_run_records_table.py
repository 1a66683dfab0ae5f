"""The run-record snippets that method pages include are the ones their perf records give."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import run_records_table as t  # noqa: E402


def test_committed_snippets_are_up_to_date():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_records_table.py"), "--check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_table_groups_runs_by_settings_with_sample_std():
    runs = [{"recipe": "r", "split": "test", "overrides": {}, "seed": s, "acc": a, "forgetting": 0.1}
            for s, a in ((1, 0.8), (0, 0.6))]
    runs.append({"recipe": "r", "split": "test", "overrides": {"lr": "0.1"}, "seed": 0, "acc": 0.5})
    rows = [line for line in t.table(runs, "x.jsonl").splitlines() if line.startswith("| `r`")]
    assert len(rows) == 2
    # mean 70.0, sample std of (60, 80) = 14.1; seeds in order
    assert "| 70.0 ± 14.1 | 10.0 ± 0.0 | 0: 60.0, 1: 80.0 |" in rows[0]
    assert "`lr=0.1`" in rows[1] and "| 50.0 |" in rows[1]


def test_check_fails_on_a_stale_snippet(tmp_path, monkeypatch):
    monkeypatch.setattr(t, "ROOT", tmp_path)
    (tmp_path / "perf" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "snippets").mkdir(parents=True)
    monkeypatch.setattr(t, "RECORDS", ("x",))
    (tmp_path / "perf" / "results" / "x.jsonl").write_text(
        '{"recipe": "r", "split": "test", "seed": 0, "acc": 0.5}\n')
    assert t.main([]) == 0
    assert t.main(["--check"]) == 0
    (tmp_path / "docs" / "snippets" / "runs_x.md").write_text("typed by hand\n")
    assert t.main(["--check"]) == 1
