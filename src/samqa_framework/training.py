"""Training: the SAM-QA model stages (distillation, box-prompted fine-tuning) and the segmentation baselines.

``train(cfg)`` takes a composed ``train`` config (``samqa-train``, ``api.train``, the study's model stages): builds
(or reuses) the data set, trains, validates once more, exports the model (``export_path``; a SAM-style state dict
for the SAM stages) and prints a short summary. DDP (``trainer=ddp``) started from the job: the ranks are started
here (``utils.ddp``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from omegaconf import DictConfig

from samqa_framework.models.sam.checkpoints import export_sam_state_dict
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.ddp import check_single_node, lightning_would_relaunch, run_ranks
from samqa_framework.utils.hydra import config_node, instantiate_node
from samqa_framework.utils.loggers import job_loggers, log_summary
from samqa_framework.utils.objective import finite_or_nan
from samqa_framework.utils.safe_torch import check_torch_file

log = logging.getLogger(__name__)


def instantiate_callbacks(*nodes: DictConfig | None) -> list[Callback]:
    """Every ``_target_`` entry of the given callback groups (entries without one, e.g. a stage's override of a
    callback the user removed with ``callbacks=none``, are skipped)."""
    out = []
    for node in nodes:
        for name, conf in (node or {}).items():
            if isinstance(conf, DictConfig) and "_target_" in conf:
                log.info("Callback %s: %s", name, conf._target_)
                out.append(instantiate(conf))
    return out


def export_model(module: LightningModule, path: Path, meta: dict[str, Any]) -> Path:
    """The module's own ``export(path, meta)`` where it has one (the segmentation stage), else the trained SAM as a
    flat SAM-style state dict (``models.sam.checkpoints.export_sam_state_dict``)."""
    if callable(getattr(module, "export", None)):
        return module.export(path, meta=meta)
    return export_sam_state_dict(module.sam, path, meta=meta)


def _metrics(trainer: Trainer, names: list[str]) -> dict[str, float]:
    out = {}
    for name in names:
        value = trainer.callback_metrics.get(name)
        if value is not None and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run the stage of ``cfg``; returns ``{"metrics": {...}, "export": path, "trainer": Trainer, "module": ...}``.

    DDP (``trainer=ddp``) started from this job: the ranks are started here (``utils.ddp``), each runs
    ``fit_and_export`` once, and the result is rank 0's ``{"metrics", "export"}`` (its trainer and module stayed in
    that process).
    """
    seed_everything(int(cfg.seed), workers=True)
    dataset_dir = Path(cfg.paths.dataset_dir)
    # built once, here, before any rank starts: ranks building it side by side would race
    with config_node(cfg, "data"):
        instantiate(cfg.data, _convert_="all").build(dataset_dir)
    probe = _probe_trainer(cfg)
    if lightning_would_relaunch(probe):
        with config_node(cfg, "trainer"):
            check_single_node(probe)
        return run_ranks(_train_rank, cfg, probe.world_size)
    return fit_and_export(cfg)


def _probe_trainer(cfg: DictConfig) -> Trainer:
    """The configured Trainer without loggers or callbacks, only to learn how it would start its processes."""
    quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its "GPU available: ..." lines come again from the real trainer
    try:
        return instantiate_node(cfg, "trainer", callbacks=[], logger=False)
    finally:
        quiet.setLevel(level)


def _train_rank(cfg: DictConfig) -> dict[str, Any]:
    """One DDP rank (a process of its own, from ``run_ranks``): the whole fit, rank 0's summary comes back."""
    seed_everything(int(cfg.seed), workers=True)  # every rank starts from the same weights, like a DDP script
    out = fit_and_export(cfg)
    return {"metrics": out["metrics"], "export": out["export"]}


def fit_and_export(cfg: DictConfig) -> dict[str, Any]:
    """Fit, validate once more, export (global rank 0 only) and log the summary; the data set must be built."""
    datamodule = instantiate_node(cfg, "stage.datamodule")
    model = instantiate_node(cfg, "model")
    # the module's argument that takes the model: `sam` for the SAM stages, a stage may name another (`net`)
    module = instantiate_node(cfg, "stage.module", **{cfg.stage.get("model_arg", "sam"): model})
    callbacks = instantiate_callbacks(cfg.get("callbacks"), cfg.stage.get("callbacks"))
    with job_loggers(cfg) as loggers:
        trainer: Trainer = instantiate_node(cfg, "trainer", callbacks=callbacks, logger=loggers or False)
        ckpt_path = cfg.get("ckpt_path")
        # Lightning's own load: weights only (explicit: torch's default can be switched off by an environment
        # variable), unless the user trusts a file that needs more; such a file is refused here, by name
        weights_only = check_torch_file(ckpt_path) if ckpt_path else True
        with config_node(cfg, "stage.module"):  # what the module checks against the data when fit starts
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=weights_only)
        names = summary_metrics(cfg)
        metrics = _metrics(trainer, names)
        if cfg.get("final_validate", True) and not trainer.fast_dev_run:
            trainer.validate(module, datamodule=datamodule, verbose=False)
            metrics = _metrics(trainer, names) or metrics
        export = Path(cfg.export_path)
        if trainer.is_global_zero:  # one writer; under DDP every rank holds the same weights
            export = export_model(module, export,
                                  meta={"stage": cfg.stage.name, "data": cfg.data.name,
                                        "image_size": cfg.model.get("image_size"),
                                        "global_step": trainer.global_step, "metrics": metrics,
                                        "encoder": to_plain(cfg.model.get("encoder")),
                                        "model": to_plain(cfg.model)})
        log_summary(loggers, {f"final/{k}": v for k, v in metrics.items()})
    if trainer.is_global_zero:
        summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no validation metric"
        print(f"\n{cfg.stage.name} on {cfg.data.name} ({trainer.global_step} steps, {trainer.current_epoch} epochs): "
              f"{summary}")
        print(f"model: {export}")
    return {"metrics": metrics, "export": export, "trainer": trainer, "module": module}


def summary_metrics(cfg: DictConfig) -> list[str]:
    """The stage's summary metrics (``stage.summary_metrics``), the first one being the run's objective."""
    return list(cfg.stage.get("summary_metrics") or [])


def objective(cfg: DictConfig, result: dict[str, Any]) -> float:
    """What ``samqa-train`` returns to a Hydra sweeper: the stage's first summary metric after the final validation
    (NaN when the stage names none or the run did not produce it)."""
    names = summary_metrics(cfg)
    return finite_or_nan(result["metrics"].get(names[0]) if names else None)
