import math

import pytest

from avalanche_ext.functional import average_accuracy, backward_transfer, forgetting, summarize


def test_summaries_by_hand():
    m = [[0.9, 0.1, 0.0],
         [0.6, 0.8, 0.0],
         [0.3, 0.7, 0.9]]
    assert average_accuracy(m) == pytest.approx((0.3 + 0.7 + 0.9) / 3)
    # forgetting: exp0 best before end 0.9 -> 0.3 (0.6); exp1 best 0.8 -> 0.7 (0.1)
    assert forgetting(m) == pytest.approx((0.6 + 0.1) / 2)
    assert backward_transfer(m) == pytest.approx(((0.3 - 0.9) + (0.7 - 0.8)) / 2)


def test_single_row_has_no_forgetting():
    s = summarize([[0.5, 0.7]])
    assert s["acc"] == pytest.approx(0.6) and s["forgetting"] == 0.0 and s["bwt"] == 0.0
    with pytest.raises(ValueError):
        average_accuracy([])
    assert not math.isnan(forgetting([[1.0]]))
