"""The evaluate task (``samqa-evaluate``, ``api.evaluate``): HOTA, IDF1, MOTA... with TrackEval for MOTChallenge
ground truth and tracker files."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from samqa_framework.evaluate.report import format_table, write_report
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_dirs
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.loggers import job_loggers, log_summary, log_table
from samqa_framework.utils.objective import finite_or_nan

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA", "IDSW")


def ground_truth_dir(cfg: DictConfig) -> Path:
    """``gt_dir``, else the folder of the data set ``data`` names (``paths.dataset_dir``)."""
    if cfg.get("gt_dir"):
        return Path(cfg.gt_dir)
    if cfg.get("data") is None:
        raise ConfigError("gt_dir", "set it to a data-set folder or to sequences with gt/gt.txt (or choose a data set: "
                          "data=<name>)")
    return Path(cfg.paths.dataset_dir)


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate the sequences of the ground-truth folder (a data set's eval split by default) against
    ``cfg.pred_dir``; write and log the metrics. Sequences without ground truth are named and left out."""
    seqs = list(cfg.sequences) if cfg.get("sequences") else None
    metrics = evaluate_dirs(ground_truth_dir(cfg), Path(cfg.pred_dir), sequences=seqs)
    out_dir = Path(cfg.out_dir)
    write_report(metrics, out_dir)
    print(format_table(metrics))
    print(f"metrics written to {out_dir / 'metrics.json'}")
    with job_loggers(cfg) as loggers:
        rows = [[seq, *(m.get(c) for c in TABLE_COLUMNS)] for seq, m in metrics.items()]
        log_table(loggers, "metrics", ["sequence", *TABLE_COLUMNS], rows)
        log_summary(loggers, {k: v for k, v in metrics[COMBINED].items() if v is not None})  # n/a: not logged
    return metrics


def objective(cfg: DictConfig, metrics: dict[str, dict[str, float]]) -> float:
    """What ``samqa-evaluate`` returns to a Hydra sweeper: the IDF1 over all sequences (``COMBINED``)."""
    return finite_or_nan(metrics[COMBINED].get("IDF1"))
