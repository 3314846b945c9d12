"""What one study job logs to its own logger run: the row's scores, label quality, detector curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from samqa_framework.track.detector import read_results_rows
from samqa_framework.utils.loggers import log_summary, log_table


def _numbers(prefix: str, values: Mapping[str, Any] | None) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in (values or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def log_job(loggers: Sequence[Logger], row: Mapping[str, Any]) -> None:
    """Final metrics (summary), every tracker variant, label quality per sequence, the detector's per-epoch curves."""
    if not loggers:
        return
    values = {k: row[k] for k in ("IDF1", "HOTA", "interventions_per_100_frames") if row.get(k) is not None}
    for name, metrics in (row.get("variants") or {}).items():
        values |= _numbers(f"tracker/{name}", metrics)
    for seq, quality in (row.get("label_quality") or {}).items():
        values |= _numbers(f"label_quality/{seq}", quality)
    values |= _numbers("detector", row.get("detector"))
    values |= {f"time/{n}_s": st["wall_s"] for n, st in (row.get("stages") or {}).items()}
    log_summary(loggers, values)
    log_table(loggers, "study_row", ["method", "dataset", "status", "IDF1", "HOTA", "interventions_per_100_frames"],
              [[row["method"], row["dataset"], row["status"], row.get("IDF1"), row.get("HOTA"),
                row.get("interventions_per_100_frames")]])
    for seq, quality in (row.get("label_quality") or {}).items():
        if not quality:  # a sequence without ground truth has no quality report
            continue
        keys = [k for k, v in quality.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        log_table(loggers, f"label_quality/{seq}", ["method", *keys], [[row["method"], *(quality[k] for k in keys)]])
    path = Path(row["detector_curves"]) if row.get("detector_curves") else None
    if path is not None and path.is_file():
        for rec in read_results_rows(path):
            step = int(rec.get("epoch", 0))
            metrics = {f"detector/{k}": v for k, v in rec.items() if k != "epoch"}
            for lg in loggers:
                lg.log_metrics(metrics, step=step)
