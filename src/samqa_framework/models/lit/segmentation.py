"""Train a semantic segmentation net (background / animal) for the watershed baselines: cross-entropy + Dice.

``net`` is any module mapping ImageNet-normalised ``(B, 3, h, w)`` images to ``(B, 2, h, w)`` logits: the smp
U-Net / DeepLabv3 of ``conf/model/{unet,deeplabv3}.yaml`` or the frozen-DINOv2 linear head
(``models/segmentation/dinov2_linear.py``). Only parameters with gradients reach the optimiser, so a frozen
backbone stays as loaded.

Frames labelled with boxes but not masks (``supervision``, see ``data/segmentation_datamodule.py``): ``auto``
(default) trains a frame on its foreground mask where every visible animal has a mask, else on its boxes; ``box``
every frame with a visible animal on its boxes; ``mask`` refuses box-labelled training frames when fit starts. The
box terms are BoxInst's (``models/box_supervision.py``, settings ``loss.box``) on the foreground probability
``sigmoid(l_animal - l_background)``: the projection term per box, on the probability inside the box and wherever
no other animal's box lies (any foreground there must be this animal's), and the pairwise colour-affinity term over
the pixels inside the frame's boxes. A batch's loss is the mean over its frames of their mask or box loss.

Validation measures what :class:`SegmentationPredictor` gives: the foreground-minus-background logit resized
bilinearly to each frame's ORIGINAL resolution, thresholded at 0, against the frame's GT foreground there.
``val/iou`` and ``val/dice`` pool the pixels of all validation frames with masks (so empty frames count, neither
dominates). ``val/pred_box_iou``: per box of a box-labelled frame, the IoU of the tight box of the predicted
foreground in that box's region (as above) with the box; where no validation frame has masks it also stands in for
``val/iou`` (the stage's monitor and objective), with a warning.
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

from samqa_framework.models.box_supervision import (
    box_fit_iou,
    box_loss_settings,
    check_supervision,
    color_similarity,
    pairwise_loss,
    projection_loss,
    rasterize_boxes,
)
from samqa_framework.models.lit.common import (
    build_optimizer,
    build_scheduler,
    check_finite,
    check_label_coverage,
    check_training_settings,
    from_all_ranks,
    pairwise_ramp,
)
from samqa_framework.models.losses import ce_dice_loss
from samqa_framework.models.segmentation.checkpoint import export_segmentation
from samqa_framework.models.segmentation.inputs import check_input_size, normalize
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.images import as_hw

log = logging.getLogger(__name__)


def box_regions(boxes: torch.Tensor, valid: torch.Tensor, flag: torch.Tensor, height: int, width: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The animals of box-labelled frames and where each may have foreground.

    ``boxes`` (n, K, 4) in pixels of an ``height`` x ``width`` grid, ``valid`` (n, K) real rows, ``flag`` (n, K)
    labelled visible. Returns, for the N visible animals, their frame index (N,), their box masks (N, H, W) and
    their regions (N, H, W): the box and every pixel no other box of the frame covers (a hidden animal's box
    included: its pixels are unknown); and the union of the visible animals' boxes per frame (n, H, W).
    """
    n, k = valid.shape
    all_masks = rasterize_boxes(boxes.reshape(-1, 4), height, width).view(n, k, height, width)
    all_masks = all_masks.to(valid.device) & valid[:, :, None, None]
    f_idx, k_idx = (valid & flag).nonzero(as_tuple=True)
    own = all_masks[f_idx, k_idx]
    others = (all_masks.sum(1)[f_idx] - own.to(torch.long)) > 0
    union = (all_masks & flag[:, :, None, None]).any(1)
    return f_idx, own, own | ~others, union


class SegmentationModule(LightningModule):
    """Cross-entropy + Dice training of ``net`` (2 classes), AdamW over its trainable parameters.

    Args:
        net: the model (``cfg.model``), trained in place.
        image_size: its input, ``S`` or ``[h, w]`` (checked against the net's stride / patch size).
        optimizer, scheduler: see ``models/lit/common.py`` (``lr_scale`` per top-level child, e.g. ``encoder``).
        loss: ``ce_weight``, ``dice_weight``, ``dice_smooth``; ``box``: the box terms
            (``models.box_supervision.BOX_LOSS_DEFAULTS``).
        supervision: ``auto`` | ``mask`` | ``box``: how box-labelled frames train (see the module's docstring).
    """

    def __init__(self, net: nn.Module, image_size: int | list[int], optimizer: dict | None = None,
                 scheduler: dict | None = None, loss: dict | None = None, supervision: str = "auto") -> None:
        super().__init__()
        self.size = as_hw(image_size, "image_size")
        check_input_size(net, self.size, "image_size")
        optimizer, scheduler, loss = (to_plain(c) or {} for c in (optimizer, scheduler, loss))
        self.save_hyperparameters({"image_size": list(self.size), "optimizer": optimizer, "scheduler": scheduler,
                                   "loss": loss, "supervision": supervision})
        self.net = net
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        check_training_settings(self.optimizer_cfg, self.scheduler_cfg)
        self.supervision = check_supervision(supervision)
        loss = dict(loss)
        try:
            self.box_cfg = box_loss_settings(loss.pop("box", None))
        except ConfigError as exc:
            raise exc.under("loss") from exc
        self.loss_cfg = {"ce_weight": 1.0, "dice_weight": 1.0, "dice_smooth": 1.0, **loss}
        self._val: dict[str, Any] = {}
        self._warned_box_val = False
        total = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        log.info("%s: %d of %d parameters train", type(net).__name__, trainable, total)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, h, w) RGB -> (B, classes, h, w) logits."""
        return self.net(normalize(images))

    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_label_coverage(self, self.supervision)

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """CE + Dice of (n, 2, h, w) logits against (n, h, w) foreground masks."""
        cfg = self.loss_cfg
        return ce_dice_loss(logits, mask, cfg["ce_weight"], cfg["dice_weight"], cfg["dice_smooth"])

    def _box_loss(self, logits: torch.Tensor, images: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor,
                  flag: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BoxInst's terms on the foreground of n box-labelled frames (see the module's docstring)."""
        cfg = self.box_cfg
        fg = logits[:, 1] - logits[:, 0]  # the foreground logit: softmax's p(animal) = sigmoid(fg)
        height, width = fg.shape[-2:]
        f_idx, own, region, union = box_regions(boxes, valid, flag, height, width)
        projection = projection_loss(fg.sigmoid()[f_idx] * region.to(fg.dtype), own)
        weight = cfg["pairwise_weight"] * pairwise_ramp(self, cfg["pairwise_warmup_steps"])
        if weight:
            similarity = color_similarity(images, None, cfg["dilation"], cfg["theta"]).to(fg.dtype)
            pairwise = pairwise_loss(fg, similarity, union, cfg["color_threshold"], cfg["dilation"])
        else:
            pairwise = fg.sum() * 0.0
        total = cfg["projection_weight"] * projection + weight * pairwise
        return total, {"projection": projection.detach(), "pairwise": pairwise.detach()}

    def _box_frames(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B,) bool: the frames that train on their boxes (``supervision`` and the frame's labels)."""
        use_box = ~batch["has_mask"]
        if self.supervision == "box":
            use_box = use_box | (batch["box_valid"] & batch["box_flag"]).any(1)
        return use_box

    def _supervised_loss(self, logits: torch.Tensor, batch: dict[str, Any]
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each frame's mask or box loss, averaged over the batch's frames."""
        use_box = self._box_frames(batch).to(logits.device)
        n = logits.shape[0]
        total, parts = logits.sum() * 0.0, {}
        if not use_box.all():
            keep = ~use_box
            loss, mask_parts = self._loss(logits[keep], batch["mask"][keep])
            total, parts = total + loss * (int(keep.sum()) / n), parts | mask_parts
        if use_box.any():
            loss, box_parts = self._box_loss(logits[use_box], batch["image"][use_box], batch["boxes"][use_box],
                                             batch["box_valid"][use_box], batch["box_flag"][use_box])
            total, parts = total + loss * (int(use_box.sum()) / n), parts | box_parts
        return total, parts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, parts = self._supervised_loss(self(batch["image"]), batch)
        check_finite(loss, self, batch_idx, parts)
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    # --------------------------------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        self._val = {"inter": 0.0, "union": 0.0, "pred": 0.0, "gt": 0.0, "loss": 0.0, "batches": 0.0,
                     "mask_frames": 0.0, "pred_box_iou": []}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self(batch["image"])
        loss, _ = self._supervised_loss(logits, batch)
        self._val["loss"] += float(loss)
        self._val["batches"] += 1
        heat = logits[:, 1:2] - logits[:, 0:1]
        for b, mask in enumerate(batch["mask_orig"]):
            gt = mask.to(heat.device)
            pred = F.interpolate(heat[b:b + 1], size=gt.shape, mode="bilinear", align_corners=False)[0, 0] > 0
            if batch["has_mask"][b]:
                self._val["mask_frames"] += 1
                self._val["inter"] += float((pred & gt).sum())
                self._val["union"] += float((pred | gt).sum())
                self._val["pred"] += float(pred.sum())
                self._val["gt"] += float(gt.sum())
                continue
            boxes = batch["boxes_orig"][b].to(heat.device)
            k = len(boxes)
            flag = batch["box_flag"][b:b + 1, :k].to(heat.device)
            _, _, region, _ = box_regions(boxes[None], torch.ones_like(flag), flag, *gt.shape)
            fit = box_fit_iou(pred[None] & region, boxes[flag[0]])
            self._val["pred_box_iou"].extend(fit.tolist())

    def on_validation_epoch_end(self) -> None:
        parts = from_all_ranks(self, self._val)  # under DDP, each rank's share of the validation set
        keys = ("inter", "union", "pred", "gt", "loss", "batches", "mask_frames")
        v = {k: sum(p.get(k, 0.0) for p in parts) for k in keys}
        fits = [x for p in parts for x in p.get("pred_box_iou", [])]
        if not v["batches"]:
            return
        self.log("val/loss", v["loss"] / v["batches"])
        if fits:
            self.log("val/pred_box_iou", float(sum(fits) / len(fits)))
        if v["mask_frames"]:
            # no foreground predicted nor labelled anywhere: a perfect (empty) segmentation
            iou = v["inter"] / v["union"] if v["union"] else 1.0
            dice = 2 * v["inter"] / (v["pred"] + v["gt"]) if v["pred"] + v["gt"] else 1.0
            self.log("val/iou", iou, prog_bar=True)
            self.log("val/dice", dice)
        elif fits:  # box labels only: what they can measure stands in for the monitor and the objective
            if not self._warned_box_val and not self.trainer.sanity_checking:
                log.warning("no validation frame has GT masks: val/iou is the IoU of each box's predicted "
                            "foreground's tight box with the box (val/pred_box_iou)")
                self._warned_box_val = True
            self.log("val/iou", float(sum(fits) / len(fits)), prog_bar=True)

    # ------------------------------------------------------------------------------------ optim, export

    def configure_optimizers(self) -> dict[str, Any]:
        opt = build_optimizer(self.net, self.optimizer_cfg)
        return {"optimizer": opt, "lr_scheduler": build_scheduler(opt, self, self.scheduler_cfg)}

    def export(self, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Path:
        """The net's state dict at ``path`` + ``<path>.json`` (input size, ``meta``), for SegmentationPredictor."""
        return export_segmentation(self.net, path, self.size, meta)

