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

Validation reproduces ``SamMaskPredictor``: the exact GT boxes as prompts, ``Sam.postprocess_masks`` to the
ORIGINAL frame resolution, threshold ``mask_threshold``; ``val/iou`` is the mean mask IoU over all animals,
``val/box_iou`` the IoU of the GT box itself used as a mask (what a box-only annotation would give), for
comparison. A few frames are rendered as overlays (prediction filled, GT outlined, prompt box) and logged.
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

from samqa_framework.models.lit.common import (
    build_optimizer,
    build_scheduler,
    check_finite,
    check_training_settings,
    from_all_ranks,
    set_trainable,
)
from samqa_framework.models.losses import bce_dice_loss, mask_iou
from samqa_framework.models.sam.inputs import normalize_images
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.loggers import log_images

log = logging.getLogger(__name__)


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
            the mask's true IoU; 0 disables), ``resolution`` (``input`` | ``low_res``), ``dice_smooth``.
        freeze_image_encoder / freeze_prompt_encoder: keep those parts fixed (encoder in eval mode, no grads).
        mask_threshold: logit threshold of the validation masks (SAM's 0.0).
        num_overlays: validation frames rendered and logged per validation; 0 disables.
        overlay_dir: also write the latest overlays there as PNG (null: only the loggers).
    """

    def __init__(self, sam: Sam, optimizer: dict | None = None, scheduler: dict | None = None,
                 loss: dict | None = None, freeze_image_encoder: bool = False, freeze_prompt_encoder: bool = False,
                 mask_threshold: float = 0.0, num_overlays: int = 4, overlay_dir: str | None = None) -> None:
        super().__init__()
        optimizer, scheduler, loss = (to_plain(c) or {} for c in (optimizer, scheduler, loss))
        self.save_hyperparameters({"optimizer": optimizer, "scheduler": scheduler, "loss": loss,
                                   "freeze_image_encoder": freeze_image_encoder,
                                   "freeze_prompt_encoder": freeze_prompt_encoder, "mask_threshold": mask_threshold,
                                   "num_overlays": num_overlays})
        self.sam = sam
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        check_training_settings(self.optimizer_cfg, self.scheduler_cfg)
        self.loss_cfg = {"bce_weight": 1.0, "dice_weight": 1.0, "iou_head_weight": 0.0, "resolution": "input",
                         "dice_smooth": 1.0, **loss}
        if self.loss_cfg["resolution"] not in ("input", "low_res"):
            raise ConfigError("loss.resolution",
                              f"must be 'input' or 'low_res', got {self.loss_cfg['resolution']!r}")
        self.freeze_image_encoder = bool(freeze_image_encoder)
        if self.freeze_image_encoder:
            set_trainable(sam.image_encoder, False)
        if freeze_prompt_encoder:
            set_trainable(sam.prompt_encoder, False)
        self.mask_threshold = float(mask_threshold)
        self.num_overlays = int(num_overlays)
        self.overlay_dir = Path(overlay_dir) if overlay_dir else None
        self._val: dict[str, list] = {}

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

    def _loss(self, low_res: torch.Tensor, iou_pred: torch.Tensor, targets: torch.Tensor
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        low_res, iou_pred, b_idx, k_idx = self(batch)
        loss, parts = self._loss(low_res, iou_pred, batch["masks"][b_idx, k_idx].float())
        check_finite(loss, self, batch_idx, parts)
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, prog_bar=k == "iou", batch_size=bs)
        return loss

    # --------------------------------------------------------------------------------------- validation

    def on_validation_epoch_start(self) -> None:
        self._val = {"iou": [], "box_iou": [], "loss": [], "overlays": [], "captions": []}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        low_res, iou_pred, b_idx, k_idx = self(batch)
        loss, _ = self._loss(low_res, iou_pred, batch["masks"][b_idx, k_idx].float())
        self._val["loss"].append(float(loss))
        for b in range(batch["image"].shape[0]):
            sel = b_idx == b
            if not sel.any():
                continue
            in_size = tuple(int(v) for v in batch["input_size"][b])
            height, width = (int(v) for v in batch["original_size"][b])
            masks = self.sam.postprocess_masks(low_res[sel], in_size, (height, width))[:, 0] > self.mask_threshold
            gt = batch["masks_orig"][b].to(masks.device)
            ious = mask_iou(masks, gt)
            self._val["iou"].extend(ious.tolist())
            box_iou = mask_iou(box_masks(batch["boxes_orig"][b], height, width), gt.cpu())
            self._val["box_iou"].extend(box_iou.tolist())
            if len(self._val["overlays"]) < self.num_overlays:
                h, w = in_size
                img = batch["image"][b, :, :h, :w].permute(1, 2, 0).cpu().numpy()
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
                self._val["overlays"].append(overlay(img, masks.cpu().numpy(), gt.cpu().numpy(),
                                                     batch["boxes_orig"][b].numpy()))
                self._val["captions"].append(f"{batch['name'][b]} IoU {ious.mean():.3f} "
                                             f"(box {box_iou.mean():.3f})")

    def on_validation_epoch_end(self) -> None:
        # every rank's values first (a collective: no rank may return before it)
        val = {k: [x for part in from_all_ranks(self, self._val.get(k, [])) for x in part]
               for k in ("iou", "box_iou", "loss")}
        if not val["iou"]:
            return
        self.log("val/iou", float(np.mean(val["iou"])), prog_bar=True)
        self.log("val/box_iou", float(np.mean(val["box_iou"])))
        self.log("val/loss", float(np.mean(val["loss"])))
        self.log("val/iou_p10", float(np.percentile(val["iou"], 10)))
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
