"""The latent family's method pages quote committed perf records through generated text, never typed numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))


def test_the_latent_family_snippet_is_the_one_generated_from_the_gnr_compare_records():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "latent_family_table.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_snippet_generator_reads_its_numbers_from_the_records():
    sys.path.insert(0, str(ROOT / "scripts"))
    import latent_family_table as t

    runs, memory = t.read_record(t.RECORDS[10])
    lr = [r for r in runs if r["method"] == "latent_replay"]
    mean, _, seeds = t.accuracy(lr)
    text = t.snippet()
    assert f"{mean:.2f}" in text and seeds in text
    assert f"{memory['gnr']['memory.generator_params']:,} parameters" in text


def test_the_epochs_table_of_the_latent_replay_page_is_the_one_its_record_gives():
    record_path = ROOT / "perf" / "results" / "latent_replay_epochs.json"
    from latent_replay_epochs import table

    record = json.loads(record_path.read_text())
    assert record_path.with_suffix(".md").read_text() == table(record)
    # the record shows what the page says: with 5 epochs latent replay stays near naive, 20 are needed
    mean = {(m, e): sum(r["acc"] for r in record["runs"] if (r["method"], r["epochs"]) == (m, e)) / len(record["seeds"])
            for m in record["methods"] for e in (5, 20)}
    assert mean["latent_replay", 5] - mean["naive", 5] < 0.1 < mean["latent_replay", 20] - mean["naive", 20]
    page = (ROOT / "docs" / "methods" / "latent_replay.md").read_text()
    assert '--8<-- "perf/results/latent_replay_epochs.md"' in page
