"""samqa-study: the paper's study. Each job: a method's labels for a data set -> YOLOv8 -> ByteTrack -> IDF1/HOTA.

    samqa-study -m                                   # the quick study: every method of hydra.sweeper.params
    samqa-study annotator=samqa                      # one method (one row)
    samqa-study -m annotator=samqa,watershed_unet data=synthetic_rats,synthetic_mice
    samqa-study -m experiment=quick_all              # every method on both data sets

Stages are cached by their config (``study.cache_dir``): a re-run or a crashed multirun picks up where it stopped.
Table 2, ``results.json`` and the figures are written when the run / multirun ends; the folder is printed last.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from samqa_framework.logging.loggers import finish_loggers, instantiate_loggers, log_config
from samqa_framework.study.job_logging import log_job
from samqa_framework.study.pipeline import study_job
from samqa_framework.utils.hydra import CONFIG_DIR, run_task

log = logging.getLogger(__name__)


def study(cfg: DictConfig) -> dict[str, Any]:
    """One job; its own logger run (W&B: named after the method and data set, grouped by the multirun)."""
    if "wandb" in (cfg.get("logger") or {}):
        with open_dict(cfg):
            cfg.logger.wandb.name = f"{cfg.study.method}-{cfg.data.name}"
    loggers = instantiate_loggers(cfg.get("logger"))
    row: dict[str, Any] = {}
    try:
        log_config(loggers, cfg)
        row = study_job(cfg)
        log_job(loggers, row)
    finally:
        finish_loggers(loggers, "success" if row.get("status") in ("ok", "skipped") else "failed")
    return row


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="study")
@run_task
def main(cfg: DictConfig) -> None:
    study(cfg)


if __name__ == "__main__":
    main()
