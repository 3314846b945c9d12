"""Image encoders that produce SAM's image embedding: (B, 256, S/16, S/16) for an S x S input.

- ``SamViTEncoder``: segment-anything's own ViT (B, L, H), at any input size that is a multiple of 16.
- ``TimmEncoder``: a timm backbone as a student. TinyViT is built the way MobileSAM builds it (its last
  stage keeps stride 16 instead of downsampling, followed by SAM's neck), so MobileSAM checkpoints map onto
  it and distillation compares like with like. Any other timm model uses its stride-16 feature map + neck.
"""

from __future__ import annotations

import timm
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.common import LayerNorm2d
from timm.models.tiny_vit import ConvNorm
from torch import nn

from samqa_framework.utils.errors import ConfigError

EMBED_DIM = 256
PATCH = 16

# segment-anything's build_sam.py values for each ViT size (embed dim, depth, heads, global-attention blocks).
SAM_VIT = {
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def check_image_size(img_size: int, key: str = "img_size") -> int:
    """``img_size`` as an int; a ``ConfigError`` naming ``key`` (the caller's argument) unless SAM can take it."""
    if int(img_size) != img_size or img_size < 64 or img_size % PATCH:
        raise ConfigError(key, f"must be a multiple of {PATCH} and at least 64, got {img_size}")
    return int(img_size)


def sam_neck(in_chans: int, out_chans: int = EMBED_DIM) -> nn.Sequential:
    """SAM's (and MobileSAM's) neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d."""
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=1, bias=False),
        LayerNorm2d(out_chans),
        nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(out_chans),
    )


class SamViTEncoder(ImageEncoderViT):
    """segment-anything's ImageEncoderViT configured by name (``vit_b``, ``vit_l``, ``vit_h``)."""

    def __init__(self, variant: str = "vit_b", img_size: int = 1024) -> None:
        if variant not in SAM_VIT:
            raise ConfigError("variant", f"unknown SAM ViT {variant!r}; choose one of {sorted(SAM_VIT)}")
        super().__init__(img_size=check_image_size(img_size), patch_size=PATCH, mlp_ratio=4, out_chans=EMBED_DIM,
                         qkv_bias=True, norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6), use_rel_pos=True,
                         window_size=14, **SAM_VIT[variant])
        self.variant = variant


class TimmEncoder(nn.Module):
    """A timm backbone + SAM neck giving a stride-16, 256-channel embedding."""

    def __init__(self, model_name: str = "tiny_vit_5m_224", img_size: int = 1024, out_chans: int = EMBED_DIM) -> None:
        super().__init__()
        self.img_size = check_image_size(img_size)
        self.model_name = model_name
        try:
            trunk = timm.create_model(model_name, pretrained=False, num_classes=0)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ConfigError("model_name", str(exc)) from None
        if model_name.startswith("tiny_vit"):
            # MobileSAM: the last stage's patch merging keeps the resolution (stride 1), so the deepest,
            # widest features come out at stride 16.
            trunk.stages[-1].downsample.conv2.conv.stride = (1, 1)
            self.trunk = nn.ModuleDict({"patch_embed": trunk.patch_embed, "stages": trunk.stages})
            in_chans = trunk.stages[-1].blocks[-1].attn.qkv.in_features
            self._features = self._tiny_vit_features
        else:
            feats = timm.create_model(model_name, pretrained=False, features_only=True)
            reductions = feats.feature_info.reduction()
            if PATCH not in reductions:
                raise ConfigError("model_name", f"{model_name} has no stride-16 feature map (strides {reductions})")
            index = reductions.index(PATCH)
            self.trunk = timm.create_model(model_name, pretrained=False, features_only=True, out_indices=(index,))
            in_chans = self.trunk.feature_info.channels()[0]
            self._features = lambda x: self.trunk(x)[0]
        self.neck = sam_neck(in_chans, out_chans)
        self.channels_last = False  # set by fuse_for_inference

    @torch.no_grad()
    def fuse_for_inference(self) -> TimmEncoder:
        """Fold each conv + BatchNorm pair into one conv and run in channels-last layout (inference only).

        TinyViT's early stages are convolutions over large maps, memory-bound on a CPU: the two changes cut its
        1024 px forward by about a quarter with outputs equal to float precision, the way ultralytics fuses a
        YOLO before prediction. BatchNorm statistics are gone afterwards, so do not train a fused encoder.
        """
        def fuse(module: nn.Module) -> None:
            for name, child in list(module.named_children()):
                if isinstance(child, ConvNorm):
                    setattr(module, name, child.fuse())
                else:
                    fuse(child)

        fuse(self)
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self.eval()

    def _tiny_vit_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk["stages"](self.trunk["patch_embed"](x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.neck(self._features(x))
