"""The runs a taxonomy has finished so far, one row appended as each ends: a killed report loses none.

``<out>/results.partial.csv`` holds the rows of ``results.csv`` with the report's settings and the run's
hyper-parameters beside each, so that ``--resume`` reuses exactly the runs made as it would make them.
The finished report replaces it with ``results.csv``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .csvlog import append_row
from .tables import COLUMNS, ResultTable

#: The file of finished runs in a report folder while the report is being made.
PARTIAL_FILE = "results.partial.csv"
_EXTRA = ["settings", "hparams"]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class PartialRuns:
    """``results.partial.csv`` of the report in ``folder``, made with ``settings``."""

    def __init__(self, folder: str | Path, settings: dict[str, Any]):
        self.path = Path(folder) / PARTIAL_FILE
        self.settings = _key(settings)

    def clear(self) -> None:
        """Forget the runs of an earlier, unfinished report (a report started again without resume)."""
        self.path.unlink(missing_ok=True)

    def append(self, row: dict[str, Any], hparams: dict[str, Any]) -> None:
        """Append one finished run's ``results.csv`` row, with the hyper-parameters it ran with."""
        append_row(self.path, COLUMNS + _EXTRA,
                   {**{k: "" if row.get(k) is None else row[k] for k in COLUMNS},
                    "settings": self.settings, "hparams": _key(hparams)})

    def finished(self, hparams: dict[str, dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The runs made with this report's settings and with ``hparams[recipe/scenario]``, by (recipe,
        scenario, seed); a row cut short by a kill is skipped."""
        done = {}
        if not self.path.is_file():
            return done
        with open(self.path, newline="") as f:
            for row in csv.DictReader(f):
                pair = f"{row.get('recipe')}/{row.get('scenario')}"
                if row.get("settings") != self.settings or pair not in hparams \
                        or row.get("hparams") != _key(hparams[pair]):
                    continue
                try:
                    result = ResultTable.result_of(row)
                except (TypeError, ValueError):  # the last line of a killed write
                    continue
                if result is not None:
                    done[(row["recipe"], row["scenario"], int(row["seed"]))] = result
        return done
