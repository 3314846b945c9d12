"""Fine-tune a (light) SAM on animal frames with box prompts: BCE + Dice on the predicted masks.

One image-encoder pass per frame serves all its K animals: the K box prompts of every frame in the batch go
through the prompt encoder and the mask decoder together (:func:`decode_boxes`, segment-anything's
``MaskDecoder.predict_masks`` with one image embedding per prompt instead of one per call). The decoder's
single-mask output is used (a box is an unambiguous prompt; ``SamMaskPredictor`` uses the same output).

Where the loss is taken (``loss.resolution``):

- ``input`` (default): the 4x-upsampled logits at the model's input resolution (the first step of
  ``Sam.postprocess_masks``) against the GT mask resized to that resolution. A small mouse at 256 px covers only
  a few cells of the 64x64 low-resolution mask, so a low-resolution target blurs exactly the boundary the
  IoU is measured on; the upsampling is bilinear and cheap, the encoder dominates the cost.
- ``low_res``: the decoder's (S/4)x(S/4) logits against the area-downsampled (soft) GT mask.

Labels with a box but no mask (``supervision``): ``auto`` (default) trains each animal on its mask where the
labels have one and on its exact GT box otherwise, with BoxInst's projection and pairwise colour-affinity terms
(``models/box_supervision.py``, settings ``loss.box``), so a data set mixing both trains; ``box`` trains every
animal on its box (masks unused); ``mask`` refuses box-only training labels when fit starts, naming the first. The
box terms are taken on the decoder's (S/4)x(S/4) logits by default (``loss.box.resolution: low_res``, BoxInst's
stride-4 masks), against the 4x average-pooled image's colours; ``input``: at input resolution.
``loss.box.target: filled`` trains a box-only animal on its box's rectangle instead (BCE + Dice at input resolution,
as a mask): the student answers a box prompt with the labelled box, which is all box labels measure, and learns it in
far fewer steps from random weights (the real fly clip: box fit 0.57 on unseen frames after 150 steps on 20 frames,
BoxInst's terms 0.17). A batch's loss is the mean over its animals of their mask or box loss.

Validation reproduces ``SamMaskPredictor``: the exact GT boxes as prompts, ``Sam.postprocess_masks`` to the
ORIGINAL frame resolution, threshold ``mask_threshold``; ``val/iou`` is the mean mask IoU over all animals that
have a GT mask, ``val/box_iou`` the IoU of the GT box itself used as a mask (what a box-only annotation would
give), for comparison. ``val/pred_box_iou``: the IoU of each predicted mask's tight box with the GT box, over all
animals (what box labels can measure); where no validation animal has a mask it is also reported as ``val/iou``
(the stage's monitor and objective), with a warning. A few frames are rendered as overlays (prediction filled, GT
outlined, prompt box) and logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from segment_anything.modeling import MaskDecoder, Sam

from samqa_framework.models.box_supervision import (
    box_fit_iou,
    box_loss,
    box_loss_settings,
    check_supervision,
    color_similarity,
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
    set_trainable,
)
from samqa_framework.models.losses import bce_dice_loss, mask_iou
from samqa_framework.models.sam.inputs import normalize_images
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.loggers import log_images

log = logging.getLogger(__name__)

# loss.box.target: what a box-only animal trains on. boxinst: BoxInst's projection + pairwise terms (a mask inside
# its box, shaped by colour); filled: the box's rectangle as its mask target (BCE + Dice), the plain baseline BoxInst
# is measured against: the student learns to answer a box prompt with the animal's labelled box (all that box labels
# measure), which needs far fewer steps from random weights.
BOX_TARGETS = ("boxinst", "filled")


def decode_boxes(sam: Sam, image_embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-mask SAM decoding of N box prompts, each with its own image embedding.

    ``image_embeddings`` (N, 256, g, g) (rows repeated for prompts on the same image), ``boxes`` (N, 4) in
    input-image pixels. Returns low-resolution logits (N, 1, 4g, 4g) and predicted IoUs (N, 1); identical to
    calling ``sam.mask_decoder(..., multimask_output=False)`` image by image.
    """
    sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
    decoder: MaskDecoder = sam.mask_decoder
    n = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(n, -1, -1), sparse), dim=1)
    src = image_embeddings + dense
    pos_src = sam.prompt_encoder.get_dense_pe().expand(n, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1:1 + decoder.num_mask_tokens, :]
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    # only the single-mask token (index 0) is needed: skip the three multimask hypernetworks
    hyper = decoder.output_hypernetworks_mlps[0](mask_tokens_out[:, 0, :]).unsqueeze(1)
    b, c, h, w = upscaled.shape
    masks = (hyper @ upscaled.view(b, c, h * w)).view(b, 1, h, w)
    iou_pred = decoder.iou_prediction_head(iou_token_out)[:, :1]
    return masks, iou_pred


def overlay(image: np.ndarray, pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """RGB uint8 frame with predicted masks filled (one colour each), GT outlined white, prompt boxes yellow."""
    out = image.astype(np.float32)
    colours = [(230, 60, 60), (60, 130, 230), (60, 200, 90), (220, 120, 240), (240, 160, 40), (40, 210, 210)]
    for k, mask in enumerate(pred):
        out[mask] = 0.55 * out[mask] + 0.45 * np.asarray(colours[k % len(colours)], np.float32)
    out = out.clip(0, 255).astype(np.uint8)
    for mask in gt:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    for x1, y1, x2, y2 in np.asarray(boxes).reshape(-1, 4):
        cv2.rectangle(out, (int(x1), int(y1)), (round(float(x2)) - 1, round(float(y2)) - 1), (255, 230, 0), 1)
    return out


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(K, 4) x1, y1, x2, y2 pixel-edge boxes -> (K, H, W) bool masks of the pixels they cover."""
    out = torch.zeros((len(boxes), height, width), dtype=torch.bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        out[k, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    return out


class FinetuneModule(LightningModule):
    """Box-prompted fine-tuning of ``sam`` (all of it unless frozen), with BCE + Dice (+ IoU-head MSE).

    Args:
        sam: the model (``cfg.model``), trained in place.
        optimizer, scheduler: see ``models/lit/common.py``.
        loss: ``bce_weight``, ``dice_weight``, ``iou_head_weight`` (MSE of the decoder's predicted IoU against
            the mask's true IoU; 0 disables), ``resolution`` (``input`` | ``low_res``), ``dice_smooth``; ``box``:
            the box terms (``models.box_supervision.BOX_LOSS_DEFAULTS`` + ``resolution``, default ``low_res``).
        supervision: ``auto`` | ``mask`` | ``box``: how box-only labels train (see the module's docstring).
        freeze_image_encoder / freeze_prompt_encoder: keep those parts fixed (encoder in eval mode, no grads).
        mask_threshold: logit threshold of the validation masks (SAM's 0.0).
        num_overlays: validation frames rendered and logged per validation; 0 disables.
        overlay_dir: also write the latest overlays there as PNG (null: only the loggers).
    """

    def __init__(self, sam: Sam, optimizer: dict | None = None, scheduler: dict | None = None,
                 loss: dict | None = None, freeze_image_encoder: bool = False, freeze_prompt_encoder: bool = False,
                 mask_threshold: float = 0.0, num_overlays: int = 4, overlay_dir: str | None = None,
                 supervision: str = "auto") -> None:
        super().__init__()
        optimizer, scheduler, loss = (to_plain(c) or {} for c in (optimizer, scheduler, loss))
        self.save_hyperparameters({"optimizer": optimizer, "scheduler": scheduler, "loss": loss,
                                   "freeze_image_encoder": freeze_image_encoder,
                                   "freeze_prompt_encoder": freeze_prompt_encoder, "mask_threshold": mask_threshold,
                                   "num_overlays": num_overlays, "supervision": supervision})
        self.sam = sam
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        check_training_settings(self.optimizer_cfg, self.scheduler_cfg)
        self.supervision = check_supervision(supervision)
        loss = dict(loss)
        try:
            self.box_cfg = box_loss_settings(loss.pop("box", None), extra={"resolution": "low_res",
                                                                           "target": "boxinst"})
            if self.box_cfg["target"] not in BOX_TARGETS:
                raise ConfigError("box.target", f"must be one of {', '.join(BOX_TARGETS)}, got "
                                  f"{self.box_cfg['target']!r}")
        except ConfigError as exc:
            raise exc.under("loss") from exc
        self.loss_cfg = {"bce_weight": 1.0, "dice_weight": 1.0, "iou_head_weight": 0.0, "resolution": "input",
                         "dice_smooth": 1.0, **loss}
        for key, cfg in (("loss.resolution", self.loss_cfg), ("loss.box.resolution", self.box_cfg)):
            if cfg["resolution"] not in ("input", "low_res"):
                raise ConfigError(key, f"must be 'input' or 'low_res', got {cfg['resolution']!r}")
        self.freeze_image_encoder = bool(freeze_image_encoder)
        if self.freeze_image_encoder:
            set_trainable(sam.image_encoder, False)
        if freeze_prompt_encoder:
            set_trainable(sam.prompt_encoder, False)
        self.mask_threshold = float(mask_threshold)
        self.num_overlays = int(num_overlays)
        self.overlay_dir = Path(overlay_dir) if overlay_dir else None
        self._val: dict[str, list] = {}
        self._warned_box_val = False

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Low-res logits (N, 1, S/4, S/4) and predicted IoUs (N, 1) for the N valid prompts of the batch, and
        their (frame, animal) positions."""
        if self.freeze_image_encoder and self.sam.image_encoder.training:
            self.sam.image_encoder.eval()  # frozen: BatchNorm statistics stay fixed too (Lightning sets train mode)
        x = normalize_images(batch["image"], batch["input_size"], self.sam.pixel_mean, self.sam.pixel_std)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_image_encoder):
            emb = self.sam.image_encoder(x)
        b_idx, k_idx = batch["valid"].nonzero(as_tuple=True)
        low_res, iou_pred = decode_boxes(self.sam, emb[b_idx], batch["boxes"][b_idx, k_idx])
        return low_res, iou_pred, b_idx, k_idx

    def setup(self, stage: str) -> None:
        if stage == "fit":
            check_label_coverage(self, self.supervision)

    def _loss(self, low_res: torch.Tensor, iou_pred: torch.Tensor, targets: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BCE + Dice (+ IoU-head MSE) of N predictions against their (N, S, S) GT masks."""
        cfg = self.loss_cfg
        size = targets.shape[-1]
        if cfg["resolution"] == "input":
            logits = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)[:, 0]
        else:
            logits = low_res[:, 0]
            targets = F.interpolate(targets[:, None], logits.shape[-2:], mode="area")[:, 0]
        loss, parts = bce_dice_loss(logits, targets, cfg["bce_weight"], cfg["dice_weight"], cfg["dice_smooth"])
        true_iou = mask_iou(logits.detach() > 0, targets > 0.5)
        parts["iou"] = true_iou.mean()
        if cfg["iou_head_weight"]:
            iou_loss = F.mse_loss(iou_pred[:, 0], true_iou)
            loss = loss + cfg["iou_head_weight"] * iou_loss
            parts["iou_head"] = iou_loss.detach()
        return loss, parts

    def _box_loss(self, batch: dict[str, Any], low_res: torch.Tensor, b_idx: torch.Tensor, k_idx: torch.Tensor
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """BoxInst's projection + pairwise terms of N predictions against their exact GT boxes."""
        cfg = self.box_cfg
        size = batch["image"].shape[-1]
        if cfg["resolution"] == "input":
            logits = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)[:, 0]
        else:
            logits = low_res[:, 0]
        grid = logits.shape[-1]
        stride = size / grid
        frames = torch.unique(b_idx)  # the colour affinities once per frame, not per animal
        image = batch["image"][frames].float()
        if stride > 1:
            image = F.avg_pool2d(image, kernel_size=round(stride))  # BoxInst: colours of the pooled image
        h_w = batch["input_size"][frames].to(torch.float32)
        valid = rasterize_boxes(torch.cat([torch.zeros_like(h_w), h_w.flip(1)], 1), grid, grid, stride)
        similarity = color_similarity(image / 255.0, valid.to(image.device), cfg["dilation"], cfg["theta"])
        row = torch.searchsorted(frames, b_idx)
        boxes = rasterize_boxes(batch["target_boxes"][b_idx, k_idx], grid, grid, stride).to(logits.device)
        return box_loss(logits, boxes, similarity[row].to(logits.dtype), cfg["projection_weight"],
                        cfg["pairwise_weight"] * pairwise_ramp(self, cfg["pairwise_warmup_steps"]),
                        cfg["color_threshold"], cfg["dilation"])

    def _supervised_loss(self, batch: dict[str, Any], low_res: torch.Tensor, iou_pred: torch.Tensor,
                         b_idx: torch.Tensor, k_idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's loss: each animal's mask loss where it has a mask (and ``supervision`` is not ``box``), its
        box loss otherwise, averaged over the animals (each part weighted by its share of them)."""
        with_mask = batch["has_mask"][b_idx, k_idx].to(low_res.device)
        if self.supervision == "box":
            with_mask = torch.zeros_like(with_mask)
        total, parts, n = low_res.sum() * 0.0, {}, max(len(b_idx), 1)
        if with_mask.any():
            loss, mask_parts = self._loss(low_res[with_mask], iou_pred[with_mask],
                                          batch["masks"][b_idx[with_mask], k_idx[with_mask]].float())
            total, parts = total + loss * (int(with_mask.sum()) / n), parts | mask_parts
        if not with_mask.all():
            box_only = ~with_mask
            if self.box_cfg["target"] == "filled":  # the box's rectangle as the mask (BCE + Dice)
                size = batch["image"].shape[-1]
                filled = rasterize_boxes(batch["target_boxes"][b_idx[box_only], k_idx[box_only]], size, size)
                loss, box_parts = self._loss(low_res[box_only], iou_pred[box_only], filled.float())
                box_parts = {f"filled_{k}": v for k, v in box_parts.items()}
            else:
                loss, box_parts = self._box_loss(batch, low_res[box_only], b_idx[box_only], k_idx[box_only])
            total, parts = total + loss * (int(box_only.sum()) / n), parts | box_parts
        return total, parts

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        low_res, iou_pred, b_idx, k_idx = self(batch)
        loss, parts = self._supervised_loss(batch, low_res, iou_pred, b_idx, k_idx)
        check_finite(loss, self, batch_idx, parts)
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, prog_bar=k == "iou", batch_size=bs)
        return loss

    # --------------------------------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        self._val = {"iou": [], "box_iou": [], "pred_box_iou": [], "loss": [], "overlays": [], "captions": []}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        low_res, iou_pred, b_idx, k_idx = self(batch)
        loss, _ = self._supervised_loss(batch, low_res, iou_pred, b_idx, k_idx)
        self._val["loss"].append(float(loss))
        for b in range(batch["image"].shape[0]):
            sel = b_idx == b
            if not sel.any():
                continue
            in_size = tuple(int(v) for v in batch["input_size"][b])
            height, width = (int(v) for v in batch["original_size"][b])
            masks = self.sam.postprocess_masks(low_res[sel], in_size, (height, width))[:, 0] > self.mask_threshold
            gt = batch["masks_orig"][b].to(masks.device)
            with_mask = batch["has_mask"][b, :len(gt)].to(masks.device)
            ious = mask_iou(masks[with_mask], gt[with_mask])
            self._val["iou"].extend(ious.tolist())
            box_iou = mask_iou(box_masks(batch["boxes_orig"][b][with_mask.cpu()], height, width),
                               gt[with_mask].cpu())
            self._val["box_iou"].extend(box_iou.tolist())
            fit = box_fit_iou(masks, batch["boxes_orig"][b])
            self._val["pred_box_iou"].extend(fit.tolist())
            if len(self._val["overlays"]) < self.num_overlays:
                h, w = in_size
                img = batch["image"][b, :, :h, :w].permute(1, 2, 0).cpu().numpy()
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
                self._val["overlays"].append(overlay(img, masks.cpu().numpy(), gt.cpu().numpy(),
                                                     batch["boxes_orig"][b].numpy()))
                caption = (f"IoU {ious.mean():.3f} (box {box_iou.mean():.3f})" if len(ious)
                           else f"box-fit IoU {fit.mean():.3f} (no GT mask)")
                self._val["captions"].append(f"{batch['name'][b]} {caption}")

    def on_validation_epoch_end(self) -> None:
        # every rank's values first (a collective: no rank may return before it)
        val = {k: [x for part in from_all_ranks(self, self._val.get(k, [])) for x in part]
               for k in ("iou", "box_iou", "pred_box_iou", "loss")}
        if not val["pred_box_iou"]:
            return
        self.log("val/pred_box_iou", float(np.mean(val["pred_box_iou"])))
        self.log("val/loss", float(np.mean(val["loss"])))
        if val["iou"]:
            self.log("val/iou", float(np.mean(val["iou"])), prog_bar=True)
            self.log("val/box_iou", float(np.mean(val["box_iou"])))
            self.log("val/iou_p10", float(np.percentile(val["iou"], 10)))
        else:  # box labels only: what they can measure stands in for the monitor and the objective
            if not self._warned_box_val and not self.trainer.sanity_checking:
                log.warning("no validation animal has a GT mask: val/iou and val/iou_p10 are the IoU of each "
                            "predicted mask's tight box with the GT box (val/pred_box_iou)")
                self._warned_box_val = True
            self.log("val/iou", float(np.mean(val["pred_box_iou"])), prog_bar=True)
            self.log("val/iou_p10", float(np.percentile(val["pred_box_iou"], 10)))
        if self.trainer.sanity_checking or not self._val["overlays"] or not self.trainer.is_global_zero:
            return
        log_images(self.loggers, "val/overlays", self._val["overlays"], self._val["captions"])
        if self.overlay_dir is not None:
            self.overlay_dir.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(self._val["overlays"]):
                cv2.imwrite(str(self.overlay_dir / f"val_overlay_{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))

    # ------------------------------------------------------------------------------------------- optim

    def configure_optimizers(self) -> dict[str, Any]:
        opt = build_optimizer(self.sam, self.optimizer_cfg)
        return {"optimizer": opt, "lr_scheduler": build_scheduler(opt, self, self.scheduler_cfg)}
