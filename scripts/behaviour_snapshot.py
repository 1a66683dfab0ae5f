"""Record (or check) the accuracy matrices of three recipes per family, to show a refactor changes nothing.

    python scripts/behaviour_snapshot.py --out tests/fixtures/behaviour_split_digits.json   # record
    python scripts/behaviour_snapshot.py --check tests/fixtures/behaviour_split_digits.json # compare

Each case runs ``avalanche-ext run RECIPE --benchmark split_digits --scenario S --seed 0 --epochs 1
--threads 1 --json`` in a fresh process, with the recipes' own defaults (``AVALANCHE_EXT_NO_SELECTED=1``:
no setting selected on the validation split, as when the record was made), and keeps its ``acc_matrix``. ``tests/test_behaviour.py``
runs the same cases and compares them with the committed record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: (recipe, scenario): three per family, the pack's own methods first.
CASES = [
    ("naive", "class"), ("cumulative", "task"), ("ensemble", "class"),
    ("replay", "class"), ("exstream", "class"), ("latent_replay", "class"),
    ("ewc", "task"), ("lwf", "class"), ("hnet", "task"),
    ("hat", "task"), ("supsup", "class"), ("piggyback", "task"),
    ("gnr", "class"), ("progress_compress", "task"), ("icarl", "class"),
]


#: Defaults changed on purpose after the record was made: the case sets the recorded behaviour back, so that it
#: still shows the rest of the recipe unchanged (iCaRL's class means now leave out mirrored exemplars).
PINNED = {("icarl", "class"): ["--set", "mirror_means=true"]}


def command(recipe: str, scenario: str, tracking_uri: str) -> list[str]:
    exe = Path(sys.executable).with_name("avalanche-ext")
    return [str(exe), "run", recipe, "--benchmark", "split_digits", "--scenario", scenario, "--seed", "0",
            "--epochs", "1", "--threads", "1", "--json", "-q", "--no-checkpoint", "--no-log-model",
            "--tracking-uri", tracking_uri, *PINNED.get((recipe, scenario), [])]


def run_case(recipe: str, scenario: str, tracking_uri: str) -> list[list[float]]:
    cmd = command(recipe, scenario, tracking_uri)
    env = {**os.environ, "AVALANCHE_EXT_NO_SELECTED": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode == 2 and "--no-log-model" in out.stderr:  # a version of the CLI without the flag
        cmd.remove("--no-log-model")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{recipe}/{scenario} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["acc_matrix"]


def same(a: list[list[float]], b: list[list[float]], tol: float = 1e-9) -> bool:
    return len(a) == len(b) and all(
        len(ra) == len(rb) and all(math.isclose(x, y, abs_tol=tol) or (math.isnan(x) and math.isnan(y))
                                   for x, y in zip(ra, rb)) for ra, rb in zip(a, b))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write the record here")
    group.add_argument("--check", help="compare with this record")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        record = {f"{r}/{s}": run_case(r, s, uri) for r, s in CASES}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
        print(f"{len(record)} cases written to {args.out}")
        return 0
    expected = json.loads(Path(args.check).read_text())
    bad = [k for k in expected if not same(expected[k], record.get(k, []))]
    print("all cases unchanged" if not bad else f"changed: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
