"""Shared pieces of the training stages: optimiser and schedule from config, the divergence check.

``optimizer`` config: ``lr``, ``weight_decay``, ``betas``, ``eps`` and per-part learning-rate multipliers
(``lr_scale: {image_encoder: 1.0, prompt_encoder: 1.0, mask_decoder: 1.0}``). AdamW; biases, norms and other
1-D parameters (embeddings tokens included) get no weight decay.

``scheduler`` config: ``name`` (``cosine`` | ``constant``), ``warmup_steps`` (linear from ``warmup_start``
x lr), ``min_lr_ratio`` (cosine floor). The cosine runs over the step horizon (``max_steps`` / ``max_epochs`` as
Lightning estimates it), never over a wall-clock budget: the same config gives the same learning rates, and so the
same weights, however busy the machine is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from samqa_framework.utils.errors import ConfigError, SamqaError

log = logging.getLogger(__name__)


class TrainingDivergedError(SamqaError, FloatingPointError):
    """The loss became NaN or infinite; the message names the global step and the batch index."""


def check_finite(loss: torch.Tensor, module: LightningModule, batch_idx: int, parts: Mapping[str, Any] = ()) -> None:
    """Raise :class:`TrainingDivergedError` if ``loss`` is not finite (stops the Trainer)."""
    if torch.isfinite(loss).all():
        return
    detail = ", ".join(f"{k}={float(v):.4g}" for k, v in dict(parts).items())
    raise TrainingDivergedError(
        f"non-finite training loss ({float(loss.detach()):g}) at global step {module.global_step}, epoch "
        f"{module.current_epoch}, batch index {batch_idx}" + (f" ({detail})" if detail else "")
        + ": lower the optimizer's lr, raise the trainer's gradient_clip_val or check the data")


def from_all_ranks(module: LightningModule, value: Any) -> list[Any]:
    """``value`` of every DDP rank (``[value]`` in one process), for epoch metrics over the whole validation set:
    under DDP each rank validates its own share, and Lightning's ``self.log`` would report rank 0's share only."""
    trainer = module._trainer
    if trainer is None or trainer.world_size < 2 or not torch.distributed.is_initialized():
        return [value]
    out: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(out, value)
    return out


def _parts(named: Iterable[tuple[str, nn.Parameter]]) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, param in named:
        if param.requires_grad:
            groups.setdefault(name.split(".", 1)[0], []).append((name, param))
    return groups


def check_training_settings(optimizer: Mapping[str, Any], scheduler: Mapping[str, Any]) -> None:
    """A training module's ``optimizer`` and ``scheduler`` arguments, checked when the module is built rather than
    when Lightning first asks for the optimiser (errors name ``optimizer.lr``, ``scheduler.name``)."""
    for name, settings, check in (("optimizer", optimizer, _check_optimizer),
                                  ("scheduler", scheduler, _check_scheduler)):
        try:
            check(settings)
        except ConfigError as exc:
            raise exc.under(name) from exc


def _check_optimizer(cfg: Mapping[str, Any]) -> float:
    lr = float(cfg.get("lr", 1e-3))
    if not lr > 0:
        raise ConfigError("lr", f"must be positive, got {lr}")
    return lr


def _check_scheduler(cfg: Mapping[str, Any]) -> str:
    name = str(cfg.get("name", "cosine"))
    if name not in ("cosine", "constant"):
        raise ConfigError("name", f"must be 'cosine' or 'constant', got {name!r}")
    return name


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """AdamW over ``model``'s trainable parameters, one group per top-level child (x its ``lr_scale``) and
    decay / no-decay."""
    lr = _check_optimizer(cfg)
    wd = float(cfg.get("weight_decay", 0.0))
    scales = dict(cfg.get("lr_scale") or {})
    groups = []
    for part, params in _parts(model.named_parameters()).items():
        scale = float(scales.get(part, 1.0))
        decay = [p for n, p in params if p.ndim > 1]
        no_decay = [p for n, p in params if p.ndim <= 1]
        for ps, w, suffix in ((decay, wd, ""), (no_decay, 0.0, "-no_decay")):
            if ps:
                groups.append({"params": ps, "lr": lr * scale, "weight_decay": w, "name": part + suffix})
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (is everything frozen?)")
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.get("betas", (0.9, 0.999))),
                             eps=float(cfg.get("eps", 1e-8)), weight_decay=wd)


def training_progress(module: LightningModule, total: float | None = None) -> float:
    """Fraction in [0, 1] of the step horizon used (``total``; default: Lightning's ``estimated_stepping_batches``;
    0 when it is not finite, e.g. a run bounded only by ``max_time``, which then keeps its warmup-end rate)."""
    trainer = module._trainer
    if trainer is None:
        return 0.0
    total = trainer.estimated_stepping_batches if total is None else total
    if not total or not math.isfinite(total) or total <= 0:
        return 0.0
    return min(max(trainer.global_step / total, 0.0), 1.0)


def build_scheduler(optimizer: torch.optim.Optimizer, module: LightningModule,
                    cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A per-step ``LambdaLR``: linear warmup, then cosine to ``min_lr_ratio`` (or constant)."""
    name = _check_scheduler(cfg)
    warmup = int(cfg.get("warmup_steps", 0))
    start = float(cfg.get("warmup_start", 0.01))
    floor = float(cfg.get("min_lr_ratio", 0.0))
    total = module._trainer.estimated_stepping_batches if module._trainer is not None else None

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return start + (1.0 - start) * step / warmup
        if name == "constant":
            return 1.0
        p = training_progress(module, total)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": sched, "interval": "step", "frequency": 1}


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


def check_label_coverage(module: LightningModule, supervision: str) -> None:
    """When fit starts: what the training labels hold against ``supervision`` (``auto`` | ``mask`` | ``box``).

    Reads the ``coverage`` (``data.datamodules.MaskCoverage``) of the trainer's data module's training set, where
    there is one. ``mask`` with box-only labels is a ConfigError on ``supervision`` naming the first such animal;
    otherwise a log line says how many animals train on their boxes.
    """
    trainer = module._trainer
    coverage = getattr(getattr(getattr(trainer, "datamodule", None), "train_set", None), "coverage", None)
    if coverage is None:
        return
    if coverage.box_only and supervision == "mask":
        raise ConfigError("supervision", f"is 'mask', but {coverage.describe()}: 'auto' trains those on their "
                                         "boxes (BoxInst's projection and colour-affinity terms), 'box' every animal")
    if supervision == "box":
        log.info("supervision=box: all %d labelled training animals train on their boxes (BoxInst), masks unused",
                 coverage.animals)
    elif coverage.box_only:
        log.info("box supervision (BoxInst) for the animals without a mask: %s", coverage.describe())


def pairwise_ramp(module: LightningModule, warmup_steps: int) -> float:
    """BoxInst's warm-up of its pairwise term: ``min(1, (global step + 1) / warmup_steps)`` (1 without warm-up)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (module.global_step + 1) / warmup_steps)
