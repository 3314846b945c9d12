"""What an app's ``main`` returns to a Hydra sweeper (Optuna...): plain floats, NaN for a run without a value.

A sweeper compares returned values, so a skipped or failed run must give a number that never wins (NaN), not
``None`` or an exception.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def finite_or_nan(value: Any) -> float:
    """``value`` as a float; NaN for ``None``, a bool, a non-number or a non-finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's numbers are Real too
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def mean_over(records: Iterable[Mapping[str, Any] | None], keys: Sequence[str]) -> float | list[float]:
    """The mean of each key over the records that hold a finite number for it (NaN where none does); one float
    for one key, a list in the keys' order for several (a multi-objective sweep)."""
    records = [r for r in records if r]
    means = []
    for key in keys:
        values = [v for v in (finite_or_nan(r.get(key)) for r in records) if not math.isnan(v)]
        means.append(sum(values) / len(values) if values else math.nan)
    return means[0] if len(keys) == 1 else means
