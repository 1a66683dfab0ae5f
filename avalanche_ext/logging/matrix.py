"""The accuracy matrix of a run, gathered from Avalanche's per-experience accuracy metrics."""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from ..functional import summarize

#: Avalanche's accuracy on experience ``j`` of the test stream, one value per evaluation.
_EXP_ACC = re.compile(r"^Top1_Acc_Exp/eval_phase/test_stream/Task\d+/Exp(\d+)$")


class AccuracyMatrix:
    """Accuracy on every experience after every training step: ``rows[i][j]``.

    Feed it the metrics of each evaluation between :meth:`start_eval` and :meth:`end_eval`;
    an evaluation before any training is not a row.

    Example:
        >>> acc = AccuracyMatrix()
        >>> acc.start_eval()
        >>> acc.observe("Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp001", 0.5)
        >>> acc.end_eval(trained=1)
        >>> acc.as_lists()
        [[nan, 0.5]]

    Args:
        rows: rows so far (``{step: {experience: accuracy}}``), e.g. from a checkpoint.
    """

    def __init__(self, rows: Mapping[Any, Mapping[Any, float]] | None = None):
        self.rows: dict[int, dict[int, float]] = {int(i): {int(j): float(v) for j, v in r.items()}
                                                  for i, r in (rows or {}).items()}
        self._row: dict[int, float] = {}

    def start_eval(self) -> None:
        """An evaluation begins: forget the partial row of the previous one."""
        self._row = {}

    def observe(self, name: str, value: float) -> None:
        """Keep ``value`` if ``name`` is the accuracy on one experience of the test stream."""
        match = _EXP_ACC.match(name)
        if match:
            self._row[int(match.group(1))] = float(value)

    def end_eval(self, trained: int) -> None:
        """The evaluation after ``trained`` training steps ended: its values are row ``trained - 1``."""
        if self._row and trained > 0:
            self.rows[trained - 1] = dict(self._row)

    def as_lists(self) -> list[list[float]]:
        """The matrix (rows: training steps, columns: experiences; NaN where not evaluated)."""
        rows = [self.rows[i] for i in sorted(self.rows)]
        n_cols = max((max(r) + 1 for r in rows if r), default=0)
        return [[r.get(j, float("nan")) for j in range(n_cols)] for r in rows]

    def metrics(self) -> Iterator[tuple[str, float, int]]:
        """``(key, value, step)`` of every cell (``acc_matrix/after_expI/expJ``) and summary (``final/...``)."""
        matrix = self.as_lists()
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                yield f"acc_matrix/after_exp{i:03d}/exp{j:03d}", v, i
        if matrix:
            for key, value in summarize(matrix).items():
                yield f"final/{key}", value, 0
