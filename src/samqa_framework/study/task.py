"""The study task (``samqa-study``, ``api.study``): one job of the paper's study, a method's labels for a data set
-> YOLOv8 -> ByteTrack -> IDF1/HOTA, with its own logger run. The stages are in ``study.pipeline``; Table 2 is
made when the run or multirun ends (``study.callback``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from omegaconf import DictConfig

from samqa_framework.study.job_logging import log_job
from samqa_framework.study.pipeline import study_job
from samqa_framework.utils.loggers import job_loggers
from samqa_framework.utils.objective import finite_or_nan

log = logging.getLogger(__name__)


def study(cfg: DictConfig) -> dict[str, Any]:
    """One job; its own logger run (W&B: named after the method and data set, grouped by the multirun)."""
    with job_loggers(cfg, run_name=f"{cfg.study.method}-{cfg.data.name}") as loggers:
        row = study_job(cfg)
        log_job(loggers, row)
        loggers.failed = row.get("status") not in ("ok", "skipped")
    return row


def objective(cfg: DictConfig, row: dict[str, Any]) -> float:
    """What ``samqa-study`` returns to a Hydra sweeper: the IDF1 of the primary tracker variant
    (``study.primary_variant``); NaN for a job that was skipped or failed."""
    return finite_or_nan(row.get("IDF1")) if row.get("status") == "ok" else math.nan
