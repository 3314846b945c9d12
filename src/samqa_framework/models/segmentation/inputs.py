"""How a frame becomes a segmentation network's input, shared by training and prediction so both see the same.

A frame (RGB uint8) is resized (aspect NOT kept: every net gets the same fixed (h, w) grid) with OpenCV's area
interpolation (``utils.images.resize_rgb``, in the data module and the predictor), kept ``uint8`` through the data
loader, and normalised here with the ImageNet mean and std on the model's device (what torchvision/timm encoders
and DINOv2 were pretrained with). The nets' logits are resized back to the frame bilinearly.
"""

from __future__ import annotations

import torch
from torch import nn

from samqa_framework.utils.errors import ConfigError

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, h, w) RGB -> float32, ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


def input_multiple(net: nn.Module) -> int:
    """The side every input must be a multiple of: DINOv2's patch size, an smp model's encoder stride, else 1."""
    patch = getattr(net, "patch_size", None)
    if patch:
        return int(patch)
    if getattr(net, "requires_divisible_input_shape", False) and hasattr(net, "encoder"):
        return int(net.encoder.output_stride)
    return 1


def check_input_size(net: nn.Module, size_hw: tuple[int, int], key: str) -> None:
    """``ConfigError`` naming ``key`` unless both sides of ``size_hw`` are multiples of the net's stride."""
    multiple = input_multiple(net)
    if size_hw[0] % multiple or size_hw[1] % multiple:
        raise ConfigError(key, f"{size_hw[0]}x{size_hw[1]} (h x w): both sides must be multiples of {multiple} for "
                               f"{type(net).__name__} (e.g. {max(multiple, size_hw[0] // multiple * multiple)})")
