#!/usr/bin/env bash
# Create .venv on first use and install avalanche-ext with its test and docs extras.
# Re-running is cheap: it only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.installed"
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && "$VENV/bin/python" -c "import avalanche_ext" 2>/dev/null; then
  exit 0
fi
echo "setting up $VENV (first run takes a few minutes)..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_quiet() { "$VENV/bin/pip" install --disable-pip-version-check -q "$@" 2>&1 | grep -v -e "^WARNING: Location" -e "does not provide the extra" || true; }
# torch/torchvision are pinned here (a range in pyproject.toml): these builds are on this machine's disk.
pip_quiet torch==2.14.1 torchvision==0.29.1
pip_quiet -e ".[dev,docs]"
"$VENV/bin/python" -c "import torch, torchvision, avalanche, mlflow, quadprog, mlxtend, avalanche_ext" \
  || { echo "setup failed: a dependency does not import" >&2; exit 1; }
touch "$stamp"
