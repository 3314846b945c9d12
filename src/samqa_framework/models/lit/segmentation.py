"""Train a semantic segmentation net (background / animal) for the watershed baselines: cross-entropy + Dice.

``net`` is any module mapping ImageNet-normalised ``(B, 3, h, w)`` images to ``(B, 2, h, w)`` logits: the smp
U-Net / DeepLabv3 of ``conf/model/{unet,deeplabv3}.yaml`` or the frozen-DINOv2 linear head
(``models/segmentation/dinov2_linear.py``). Only parameters with gradients reach the optimiser, so a frozen
backbone stays as loaded.

Validation measures what :class:`SegmentationPredictor` gives: the foreground-minus-background logit resized
bilinearly to each frame's ORIGINAL resolution, thresholded at 0, against the frame's GT foreground there.
``val/iou`` and ``val/dice`` pool the pixels of all validation frames (so empty frames count, neither dominates).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn

from samqa_framework.models.lit.common import (
    build_optimizer,
    build_scheduler,
    check_finite,
    check_training_settings,
    from_all_ranks,
)
from samqa_framework.models.losses import ce_dice_loss
from samqa_framework.models.segmentation.checkpoint import export_segmentation
from samqa_framework.models.segmentation.inputs import check_input_size, normalize
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.images import as_hw

log = logging.getLogger(__name__)


class SegmentationModule(LightningModule):
    """Cross-entropy + Dice training of ``net`` (2 classes), AdamW over its trainable parameters.

    Args:
        net: the model (``cfg.model``), trained in place.
        image_size: its input, ``S`` or ``[h, w]`` (checked against the net's stride / patch size).
        optimizer, scheduler: see ``models/lit/common.py`` (``lr_scale`` per top-level child, e.g. ``encoder``).
        loss: ``ce_weight``, ``dice_weight``, ``dice_smooth``.
    """

    def __init__(self, net: nn.Module, image_size: int | list[int], optimizer: dict | None = None,
                 scheduler: dict | None = None, loss: dict | None = None) -> None:
        super().__init__()
        self.size = as_hw(image_size, "image_size")
        check_input_size(net, self.size, "image_size")
        optimizer, scheduler, loss = (to_plain(c) or {} for c in (optimizer, scheduler, loss))
        self.save_hyperparameters({"image_size": list(self.size), "optimizer": optimizer, "scheduler": scheduler,
                                   "loss": loss})
        self.net = net
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        check_training_settings(self.optimizer_cfg, self.scheduler_cfg)
        self.loss_cfg = {"ce_weight": 1.0, "dice_weight": 1.0, "dice_smooth": 1.0, **loss}
        self._val: dict[str, float] = {}
        total = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        log.info("%s: %d of %d parameters train", type(net).__name__, trainable, total)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, h, w) RGB -> (B, classes, h, w) logits."""
        return self.net(normalize(images))

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.loss_cfg
        return ce_dice_loss(logits, mask, cfg["ce_weight"], cfg["dice_weight"], cfg["dice_smooth"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, parts = self._loss(self(batch["image"]), batch["mask"])
        check_finite(loss, self, batch_idx, parts)
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    # --------------------------------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        self._val = {"inter": 0.0, "union": 0.0, "pred": 0.0, "gt": 0.0, "loss": 0.0, "batches": 0.0}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["image"])
        loss, _ = self._loss(logits, batch["mask"])
        self._val["loss"] += float(loss)
        self._val["batches"] += 1
        heat = logits[:, 1:2] - logits[:, 0:1]
        for b, mask in enumerate(batch["mask_orig"]):
            gt = mask.to(heat.device)
            pred = F.interpolate(heat[b:b + 1], size=gt.shape, mode="bilinear", align_corners=False)[0, 0] > 0
            self._val["inter"] += float((pred & gt).sum())
            self._val["union"] += float((pred | gt).sum())
            self._val["pred"] += float(pred.sum())
            self._val["gt"] += float(gt.sum())

    def on_validation_epoch_end(self) -> None:
        parts = from_all_ranks(self, self._val)  # under DDP, each rank's share of the validation set
        v = {k: sum(p.get(k, 0.0) for p in parts) for k in ("inter", "union", "pred", "gt", "loss", "batches")}
        if not v["batches"]:
            return
        # no foreground predicted nor labelled anywhere: a perfect (empty) segmentation
        iou = v["inter"] / v["union"] if v["union"] else 1.0
        dice = 2 * v["inter"] / (v["pred"] + v["gt"]) if v["pred"] + v["gt"] else 1.0
        self.log("val/iou", iou, prog_bar=True)
        self.log("val/dice", dice)
        self.log("val/loss", v["loss"] / v["batches"])

    # ------------------------------------------------------------------------------------ optim, export

    def configure_optimizers(self) -> dict[str, Any]:
        opt = build_optimizer(self.net, self.optimizer_cfg)
        return {"optimizer": opt, "lr_scheduler": build_scheduler(opt, self, self.scheduler_cfg)}

    def export(self, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Path:
        """The net's state dict at ``path`` + ``<path>.json`` (input size, ``meta``), for SegmentationPredictor."""
        return export_segmentation(self.net, path, self.size, meta)

