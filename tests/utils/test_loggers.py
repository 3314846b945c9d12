from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from samqa_framework.utils import loggers as loggers_module
from samqa_framework.utils.loggers import (
    finish_loggers,
    instantiate_loggers,
    job_loggers,
    log_images,
    log_summary,
    log_table,
)


def test_csv_logger_gets_numeric_table_cells(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("evaluate", ["logger=csv", f"gt_dir={tmp_path}", f"pred_dir={tmp_path}"])
    loggers = instantiate_loggers(cfg.logger)
    assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    log_table(loggers, "metrics", ["sequence", "IDF1", "note"], [["seq1", 80.5, "x"]])
    log_summary(loggers, {"IDF1": 80.5})
    finish_loggers(loggers)
    text = Path(loggers[0].log_dir, "metrics.csv").read_text()
    assert "metrics/seq1/IDF1" in text and "80.5" in text and "note" not in text


def test_wandb_offline_run_per_job_with_table_and_image(compose_cfg, tmp_path: Path) -> None:
    """Each job opens and finishes its own offline run (a multirun must not fold jobs into one run)."""
    run_dirs = []
    for job in range(2):
        cfg = compose_cfg("evaluate", [f"gt_dir={tmp_path}", f"pred_dir={tmp_path}", f"hydra.run.dir={tmp_path}/{job}"])
        cfg.logger.wandb.save_dir = str(tmp_path / f"job{job}")
        loggers = instantiate_loggers(cfg.logger)
        assert cfg.logger.wandb.offline
        log_table(loggers, "metrics", ["sequence", "IDF1"], [["seq1", 50.0 + job]])
        log_summary(loggers, {"IDF1": 50.0 + job})
        log_images(loggers, "chart", [np.zeros((8, 8, 3), np.uint8)])
        run_id = loggers[0].experiment.id
        finish_loggers(loggers)
        found = list((tmp_path / f"job{job}" / "wandb").glob(f"offline-run-*-{run_id}"))
        assert len(found) == 1, f"no offline run folder for job {job}"
        run_dirs.append(found[0])
        assert list(found[0].glob("*.wandb")), "offline run wrote no data file"
    assert run_dirs[0].name != run_dirs[1].name


def test_logger_group_configs_instantiate(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("evaluate", ["logger=many_loggers", f"gt_dir={tmp_path}", f"pred_dir={tmp_path}"])
    names = sorted(type(instantiate(v)).__name__ for v in cfg.logger.values())
    assert names == ["CSVLogger", "TensorBoardLogger", "WandbLogger"]


def test_job_loggers_log_the_config_and_finish_failed_when_the_job_fails(compose_cfg, tmp_path: Path,
                                                                        monkeypatch) -> None:
    finished = []
    monkeypatch.setattr(loggers_module, "finish_loggers", lambda lgs, status: finished.append((len(lgs), status)))
    cfg = compose_cfg("evaluate", ["logger=csv", f"gt_dir={tmp_path}/gt", f"pred_dir={tmp_path}"])
    with job_loggers(cfg) as loggers:
        assert [type(lg).__name__ for lg in loggers] == ["CSVLogger"]
    assert f"gt_dir: {tmp_path}/gt" in Path(loggers[0].log_dir, "hparams.yaml").read_text()
    with pytest.raises(RuntimeError), job_loggers(cfg):
        raise RuntimeError("the job broke")
    with job_loggers(cfg) as loggers:
        loggers.failed = True  # a job that records its failure without raising (a study row)
    assert finished == [(1, "success"), (1, "failed"), (1, "failed")]


def test_job_loggers_run_name_leaves_the_config_as_composed(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loggers_module, "finish_loggers", lambda lgs, status: None)
    cfg = compose_cfg("evaluate", [f"gt_dir={tmp_path}", f"pred_dir={tmp_path}"])
    composed = cfg.logger.wandb.name
    with job_loggers(cfg, run_name="samqa-synthetic_rats", log_hparams=False) as loggers:
        assert loggers[0]._wandb_init["name"] == "samqa-synthetic_rats"
    assert cfg.logger.wandb.name == composed
