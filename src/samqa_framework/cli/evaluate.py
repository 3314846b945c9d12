"""samqa-evaluate: HOTA, IDF1, MOTA... with TrackEval for MOTChallenge ground truth and tracker files.

    samqa-evaluate gt_dir=DIR pred_dir=DIR out_dir=DIR
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from samqa_framework.evaluate.report import format_table, write_report
from samqa_framework.evaluate.trackeval_runner import evaluate_dirs
from samqa_framework.logging.loggers import finish_loggers, instantiate_loggers, log_summary, log_table
from samqa_framework.utils.hydra import CONFIG_DIR, run_task

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA", "IDSW")


def evaluate(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Evaluate every sequence of ``cfg.gt_dir`` against ``cfg.pred_dir``; write and log the metrics."""
    seqs = list(cfg.sequences) if cfg.get("sequences") else None
    metrics = evaluate_dirs(Path(cfg.gt_dir), Path(cfg.pred_dir), sequences=seqs)
    out_dir = Path(cfg.out_dir)
    write_report(metrics, out_dir)
    print(format_table(metrics))
    print(f"metrics written to {out_dir / 'metrics.json'}")
    loggers = instantiate_loggers(cfg.get("logger"))
    try:
        rows = [[seq, *(m.get(c) for c in TABLE_COLUMNS)] for seq, m in metrics.items()]
        log_table(loggers, "metrics", ["sequence", *TABLE_COLUMNS], rows)
        log_summary(loggers, {f"{k}": v for k, v in metrics["COMBINED"].items()})
    finally:
        finish_loggers(loggers)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@run_task
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
