"""Image sizes and resizing shared by the data modules and the models (no model- or data-set-specific step here)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from samqa_framework.utils.errors import ConfigError


def as_hw(image_size: int | Sequence[int], key: str) -> tuple[int, int]:
    """``S`` or ``[h, w]`` -> ``(h, w)``; anything else (or a side < 1) is a ``ConfigError`` naming ``key``."""
    if isinstance(image_size, int | np.integer):
        size = (int(image_size), int(image_size))
    else:
        try:
            size = tuple(int(v) for v in image_size)
        except (TypeError, ValueError):
            size = ()
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(key, f"must be a positive size S or [height, width], got {image_size!r}")
    return size  # type: ignore[return-value]


def resize_rgb(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 (area interpolation: no aliasing when shrinking)."""
    h, w = size_hw
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> (h, w) bool: a pixel is foreground if at least half of what it covers is."""
    h, w = size_hw
    if mask.shape == (h, w):
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA) >= 128
