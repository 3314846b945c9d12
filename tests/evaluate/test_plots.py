"""The charts: a mean over detector seeds carries its sd as an error bar; a single run has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.container import ErrorbarContainer

import samqa_framework.evaluate.plots as plots


def _figure_of(monkeypatch, call) -> object:
    seen = {}

    def save(fig, out_path):
        seen["fig"] = fig
        return Path(out_path)

    monkeypatch.setattr(plots, "_save", save)
    call()
    return seen["fig"]


def test_bar_chart_draws_one_sd_error_bars_where_rows_have_them(monkeypatch, tmp_path: Path) -> None:
    rows = {"manual": {"IDF1": 98.7, "HOTA": 80.0, "IDF1_sd": 0.1, "HOTA_sd": 1.5},
            "samqa": {"IDF1": 97.9, "HOTA": 78.0, "IDF1_sd": 0.3, "HOTA_sd": None}}
    fig = _figure_of(monkeypatch, lambda: plots.bar_chart(rows, tmp_path / "bars.png"))
    bars = [c for c in fig.axes[0].containers if not isinstance(c, ErrorbarContainer)]
    errs = [c.errorbar for c in bars]
    assert len(bars) == 2 and all(e is not None for e in errs)
    # the IDF1 bars' error segments span mean - sd .. mean + sd
    segments = errs[0].lines[2][0].get_segments()
    assert np.allclose([(s[0][1], s[1][1]) for s in segments], [(98.6, 98.8), (97.6, 98.2)])
    assert [t.get_text() for t in fig.axes[0].texts][:2] == ["98.7", "97.9"]


def test_bar_chart_without_seeds_draws_no_error_bars(monkeypatch, tmp_path: Path) -> None:
    rows = {"manual": {"IDF1": 54.3, "HOTA": 38.7}}
    fig = _figure_of(monkeypatch, lambda: plots.bar_chart(rows, tmp_path / "bars.png"))
    assert all(c.errorbar is None for c in fig.axes[0].containers)
