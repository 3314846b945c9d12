from __future__ import annotations

import math

import numpy as np
import pytest

from samqa_framework.utils.objective import finite_or_nan, mean_over


@pytest.mark.parametrize("value,expected", [
    (0.5, 0.5), (3, 3.0), (np.float32(0.25), 0.25), (np.int64(7), 7.0),
    (None, math.nan), (True, math.nan), ("0.9", math.nan), (math.inf, math.nan), (float("nan"), math.nan),
])
def test_finite_or_nan(value, expected: float) -> None:
    out = finite_or_nan(value)
    assert type(out) is float
    assert (math.isnan(out) and math.isnan(expected)) or out == expected


def test_mean_over_averages_each_key_over_the_records_that_hold_it() -> None:
    records = [{"iou": 0.8, "ipf": 2.0, "mask": None}, None, {"iou": 0.6, "ipf": 4.0, "mask": None}, {}]
    assert mean_over(records, ["iou"]) == pytest.approx(0.7)  # one key: a float
    means = mean_over(records, ["iou", "ipf", "mask"])         # several: a list, in the keys' order
    assert means[:2] == pytest.approx([0.7, 3.0]) and math.isnan(means[2])
    assert math.isnan(mean_over([None, {}], ["iou"]))         # no sequence with ground truth
