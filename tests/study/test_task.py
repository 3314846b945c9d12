"""The study task: one job with its own logger run, and what samqa-study returns to a sweeper."""

from __future__ import annotations

import math
from pathlib import Path

from samqa_framework.study.task import objective, study


def test_a_skipped_job_returns_nan_and_finishes_its_logger_run(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("study", ["annotator=sam2_video", "logger=csv", f"study.cache_dir={tmp_path}/cache"])
    row = study(cfg)
    assert row["status"] == "skipped" and math.isnan(objective(cfg, row))
    assert list(Path(cfg.paths.output_dir).rglob("hparams.yaml"))  # the job's config went to its logger


def test_the_objective_is_the_primary_variants_idf1_of_an_ok_row(compose_cfg) -> None:
    cfg = compose_cfg("study")
    assert objective(cfg, {"status": "ok", "IDF1": 71.5, "variants": {"paper": {"IDF1": 71.5}}}) == 71.5
    assert math.isnan(objective(cfg, {"status": "failed", "IDF1": None}))
    assert math.isnan(objective(cfg, {"status": "ok", "IDF1": float("nan")}))
