"""Write evaluation results as ``metrics.json``, ``metrics.csv`` and ``metrics.md``; format a markdown table.

Input is what ``evaluate_tables``/``evaluate_dirs`` return: ``{seq: {metric: value}, ..., "COMBINED": {...}}``
with scores in percent and counts as ints. No logging here (the CLI logs to W&B).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tabulate import tabulate

from samqa_framework.evaluate.trackeval_runner import COMBINED, COUNT_KEYS, METRIC_KEYS
from samqa_framework.utils.io import atomic_files

TABLE_COLUMNS: tuple[str, ...] = ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA", "IDSW")
JSON_DECIMALS = 3

Metrics = Mapping[str, Mapping[str, float]]


def _row_order(metrics: Metrics) -> list[str]:
    """Sequences in the given order, COMBINED last."""
    return [k for k in metrics if k != COMBINED] + ([COMBINED] if COMBINED in metrics else [])


def _columns(metrics: Metrics) -> list[str]:
    """Every metric present, known ones in METRIC_KEYS order, then any others in first-seen order."""
    seen: list[str] = []
    for row in metrics.values():
        seen += [k for k in row if k not in seen]
    return [k for k in METRIC_KEYS if k in seen] + [k for k in seen if k not in METRIC_KEYS]


def _rounded(key: str, value: float | None, decimals: int) -> float | int | None:
    if value is None:  # n/a: a sequence with an empty ground truth
        return None
    if key in COUNT_KEYS or isinstance(value, int):
        return int(value)
    return round(float(value), decimals)


def rounded_metrics(metrics: Metrics, decimals: int = JSON_DECIMALS) -> dict[str, dict[str, float | int]]:
    """A plain-dict copy, scores rounded to ``decimals``, counts as ints, COMBINED last."""
    return {seq: {k: _rounded(k, v, decimals) for k, v in metrics[seq].items()} for seq in _row_order(metrics)}


def _fmt(key: str, value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if key in COUNT_KEYS or isinstance(value, int):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def format_table(metrics: Metrics, columns: Sequence[str] = TABLE_COLUMNS, digits: int = 1,
                 label: str = "sequence") -> str:
    """A markdown table: one row per key of ``metrics`` (COMBINED last), ``label`` heading the
    first column; scores with ``digits`` decimals, a metric missing from a row as ``-``."""
    rows = [[seq, *(_fmt(c, metrics[seq].get(c), digits) for c in columns)] for seq in _row_order(metrics)]
    return tabulate(rows, headers=[label, *columns], tablefmt="pipe", disable_numparse=True,
                    colalign=("left", *("right",) * len(columns))) + "\n"


def format_csv(metrics: Metrics, decimals: int = JSON_DECIMALS) -> str:
    """CSV with a ``sequence`` column and every metric present; COMBINED last."""
    columns = _columns(metrics)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["sequence", *columns])
    for seq, row in rounded_metrics(metrics, decimals).items():
        writer.writerow([seq, *(row.get(c, "") for c in columns)])
    return buf.getvalue()


def write_report(metrics: Metrics, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``metrics.json`` (3 decimals), ``metrics.csv`` and ``metrics.md`` into ``out_dir`` as one unit
    (``utils.io.atomic_files``: a failure or a kill leaves the previous three, never a mix). Returns
    ``{"json": path, "csv": path, "md": path}``."""
    if not metrics:
        raise ValueError("no metrics to write")
    out = Path(out_dir)
    paths = {"json": out / "metrics.json", "csv": out / "metrics.csv", "md": out / "metrics.md"}
    with atomic_files(out, "metrics") as tmp:
        (tmp / "metrics.json").write_text(json.dumps(rounded_metrics(metrics), indent=2) + "\n", encoding="utf-8")
        (tmp / "metrics.csv").write_text(format_csv(metrics), encoding="utf-8")
        (tmp / "metrics.md").write_text(format_table(metrics), encoding="utf-8")
    return paths
