"""Charts of tracking metrics (PNG, matplotlib's headless backend)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from samqa_framework.utils.io import atomic_open


def _save(fig: plt.Figure, out_path: str | os.PathLike[str]) -> Path:
    """Write the figure as a PNG atomically (a reader never sees half an image) and free it."""
    out_path = Path(out_path)
    with atomic_open(out_path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return out_path


def bar_chart(rows: Mapping[str, Mapping[str, float]], out_path: str | os.PathLike[str],
              metrics: Sequence[str] = ("IDF1", "HOTA"), title: str = "") -> Path:
    """Grouped bars: one group per row (method, setting), one bar per metric, values printed on the bars. A row's
    ``<metric>_sd`` (a mean over detector seeds) is drawn as an error bar of one sd."""
    names = list(rows)
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 3.8), dpi=120)
    for i, metric in enumerate(metrics):
        values = [rows[n].get(metric, np.nan) for n in names]
        sds = [rows[n].get(f"{metric}_sd") for n in names]
        yerr = [np.nan if sd is None else sd for sd in sds] if any(sd is not None for sd in sds) else None
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric, yerr=yerr, capsize=3,
                      error_kw={"elinewidth": 1, "alpha": 0.8})
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_path)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], out_path: str | os.PathLike[str],
               xlabel: str = "", ylabel: str = "", title: str = "", notes: Sequence[str] = ()) -> Path:
    """One line per series of (x, y) points (sorted by x), e.g. IDF1 against the prompt interval (paper Fig. 3a).
    ``notes``: lines written under the plot (e.g. which points are missing and why)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8 + 0.25 * len(notes)), dpi=120)
    for name, points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=name)
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if notes:
        fig.text(0.01, 0.01, "\n".join(textwrap.shorten(n, 110) for n in notes), fontsize=7, va="bottom")
        fig.tight_layout(rect=(0, 0.04 * len(notes) + 0.02, 1, 1))
    else:
        fig.tight_layout()
    return _save(fig, out_path)
