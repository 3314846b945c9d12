"""Frames for the review page: the pixels with each identity's mask tinted (boxes are drawn by the page, editable)."""

from __future__ import annotations

import cv2
import numpy as np

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.data.preview import PALETTE


def frame_jpeg(image: np.ndarray, labels: FrameLabels | None, quality: int = 90, alpha: float = 0.4) -> bytes:
    """JPEG of BGR ``image`` with the masks of ``labels`` tinted in their identity's colour (``PALETTE``, as the page
    colours the boxes)."""
    out = image.copy()
    for inst in labels.instances if labels is not None else []:
        if not inst.has_mask:
            continue
        mask = inst.mask
        if mask is None or mask.shape != out.shape[:2]:
            continue
        r, g, b = PALETTE[(inst.track_id - 1) % len(PALETTE)]
        out[mask] = (out[mask] * (1 - alpha) + np.array([b, g, r]) * alpha).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
