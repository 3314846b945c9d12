"""Experiment loggers from the ``logger`` config group, and results tables / images for any of them.

The same Lightning logger objects serve the LightningModules (passed to the Trainer) and the non-Lightning
stages (evaluation, annotation reports), so a job writes to one W&B run whatever it does.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Every ``_target_`` entry of the ``logger`` group (none when the group is absent or null)."""
    if not cfg:
        return []
    loggers = []
    for name, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("Logger %s: %s", name, conf._target_)
            loggers.append(instantiate(conf))
    return loggers


def _is_wandb(logger: Logger) -> bool:
    return type(logger).__name__ == "WandbLogger"


def log_table(loggers: Sequence[Logger], key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A results table: a ``wandb.Table`` in W&B; numeric cells as ``key/<row>/<column>`` metrics elsewhere."""
    for logger in loggers:
        if _is_wandb(logger):
            logger.log_table(key=key, columns=list(columns), data=[list(r) for r in rows])
        else:
            metrics = {f"{key}/{r[0]}/{c}": float(v) for r in rows for c, v in zip(columns[1:], r[1:], strict=True)
                       if isinstance(v, int | float | np.number)}
            logger.log_metrics(metrics)


def log_summary(loggers: Sequence[Logger], values: Mapping[str, float]) -> None:
    """Final scalar results: the W&B run summary (what the runs table compares), metrics elsewhere."""
    for logger in loggers:
        if _is_wandb(logger):
            logger.experiment.summary.update(dict(values))
        else:
            logger.log_metrics(dict(values))


def log_images(loggers: Sequence[Logger], key: str, images: Sequence[np.ndarray],
               captions: Sequence[str] | None = None) -> None:
    """RGB uint8 (H, W, 3) images: ``wandb.Image`` in W&B, ``add_image`` in TensorBoard."""
    for logger in loggers:
        if _is_wandb(logger):
            extra = {"caption": list(captions)} if captions else {}
            logger.log_image(key=key, images=list(images), **extra)
        elif type(logger).__name__ == "TensorBoardLogger":
            for i, img in enumerate(images):
                logger.experiment.add_image(f"{key}/{i}", img, dataformats="HWC")


def log_config(loggers: Sequence[Logger], cfg: DictConfig) -> None:
    """The job's resolved config as every logger's hyperparameters (Hydra's own node left out)."""
    from samqa_framework.utils.hydra import job_config

    if loggers:
        params = job_config(cfg)
        for logger in loggers:
            logger.log_hyperparams(params)


def finish_loggers(loggers: Sequence[Logger], status: str = "success") -> None:
    """Flush and close, and finish W&B runs so that the next job of a multirun starts its own run."""
    for logger in loggers:
        logger.finalize(status)
        if _is_wandb(logger):
            import wandb

            wandb.finish(exit_code=0 if status == "success" else 1)


class JobLoggers(list[Logger]):
    """The job's loggers (a list of Lightning ``Logger``); set ``failed = True`` to finish their runs as failed
    when the job reports a failure without raising (a study job that records ``status: failed``)."""

    failed: bool = False


@contextlib.contextmanager
def job_loggers(cfg: DictConfig, run_name: str | None = None, log_hparams: bool = True) -> Iterator[JobLoggers]:
    """The loggers of ``cfg.logger`` for one job: the job's resolved config logged as their hyperparameters
    (``log_hparams``), finished on exit with status ``success``, or ``failed`` when the block raises or sets
    ``failed``. ``run_name``: the W&B run's name instead of the logger config's."""
    node = cfg.get("logger")
    if run_name and "wandb" in (node or {}):
        node = copy.deepcopy(node)  # the job's own config stays as composed
        with open_dict(node):
            node.wandb.name = run_name
    loggers = JobLoggers(instantiate_loggers(node))
    ok = False
    try:
        if log_hparams:
            log_config(loggers, cfg)
        yield loggers
        ok = not loggers.failed
    finally:
        finish_loggers(loggers, "success" if ok else "failed")


@contextlib.contextmanager
def summary_loggers(config: DictConfig, root: Path, job_type: str) -> Iterator[JobLoggers]:
    """One more logger run for a whole run or multirun (a study's Table 2, a sweep's Pareto front), written under
    ``root``; in W&B named ``job_type`` and grouped with the multirun's jobs (``${task_name}-<sweep folder>``)."""
    config = copy.deepcopy(config)  # interpolations (task name, tags) resolve in the whole config
    with open_dict(config):
        for name, node in config.logger.items():
            if "save_dir" in node:
                node.save_dir = str(root)
            if name == "wandb":  # Hydra's job config is gone by now: the group is rebuilt from the sweep folder
                node.name, node.job_type = job_type, job_type
                node.group = f"{config.task_name}-{root.name}"
    # the multirun's own config: its ${hydra:...} values may not resolve any more, so it is not logged
    with job_loggers(config, log_hparams=False) as loggers:
        yield loggers
