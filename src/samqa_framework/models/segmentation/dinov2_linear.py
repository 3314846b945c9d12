"""The paper's DINOv2 baseline: a frozen DINOv2 backbone with a trained linear head over its patch tokens.

The backbone is a Hugging Face ``Dinov2Model`` read from a local folder (``config.json`` + weights, e.g.
``facebook/dinov2-small`` saved with ``save_pretrained``); nothing is ever downloaded. Its final (layer-normed)
patch tokens form a (C, h/p, w/p) feature map; a 1x1 convolution (= a linear layer per patch) maps them to class
logits, which are upsampled bilinearly to the input size. Only the head trains: the backbone has no gradients
and stays in eval mode even when the module is put in training mode.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Dinov2Model

from samqa_framework.models.hf_folder import check_hf_folder
from samqa_framework.utils.errors import ConfigError


class Dinov2LinearHead(nn.Module):
    """Frozen DINOv2 + 1x1-conv head: ``(B, 3, H, W)`` normalised images -> ``(B, classes, H, W)`` logits.

    Args:
        backbone_path: local Hugging Face DINOv2 folder.
        classes: output classes (background + animal: 2).
        image_size: if given, checked to be a multiple of the patch size; the model itself takes any multiple of
            the patch size (DINOv2 interpolates its position embeddings).
    """

    def __init__(self, backbone_path: str | os.PathLike[str] | None, classes: int = 2,
                 image_size: int | None = None) -> None:
        super().__init__()
        if classes < 1:
            raise ConfigError("classes", f"must be >= 1, got {classes}")
        folder = check_hf_folder(backbone_path, "dinov2", "DINOv2", "facebook/dinov2-small", "backbone_path")
        try:
            self.backbone = Dinov2Model.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:  # missing or mismatched weight files
            raise ConfigError("backbone_path", f"cannot load DINOv2 from {folder}: {exc}") from exc
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.patch_size = int(self.backbone.config.patch_size)
        self.head = nn.Conv2d(int(self.backbone.config.hidden_size), int(classes), kernel_size=1)
        if image_size is not None and int(image_size) % self.patch_size:
            fit = int(image_size) // self.patch_size * self.patch_size
            raise ConfigError("image_size", f"{image_size} is not a multiple of DINOv2's patch size "
                                                  f"{self.patch_size} (e.g. {fit})")

    def train(self, mode: bool = True) -> Dinov2LinearHead:
        super().train(mode)
        self.backbone.eval()  # frozen: dropout off whatever Lightning asks
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the backbone's patch tokens as a (B, C, H/p, W/p) map (no gradients)."""
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"input {height}x{width} is not a multiple of DINOv2's patch size {self.patch_size}")
        with torch.no_grad():
            tokens = self.backbone(pixel_values=images).last_hidden_state[:, 1:]  # drop the CLS token
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        return tokens.transpose(1, 2).reshape(images.shape[0], -1, grid_h, grid_w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features(images))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
