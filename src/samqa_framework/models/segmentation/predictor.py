"""Foreground heatmaps of video frames from a trained segmentation net (the watershed baselines' input).

``heatmap(frame)`` = foreground logit minus background logit at the frame's own resolution: positive where the
net says "animal" (it is the logit of the softmax foreground probability), so ``heatmap > 0`` is the net's mask
and its peaks are the animals' cores. The frame is prepared exactly as in training
(:mod:`models.segmentation.inputs`); the logits are resized back bilinearly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from samqa_framework.models.segmentation.checkpoint import export_info, load_segmentation_state
from samqa_framework.models.segmentation.inputs import check_input_size, normalize
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.images import as_hw, resize_rgb


class SegmentationPredictor:
    """Run ``net`` (2 classes: background, animal) on frames; it is moved to ``device`` and put in eval mode.

    ``image_size``: the net's input, ``S`` or ``[h, w]`` (the size it was trained at).
    """

    def __init__(self, net: nn.Module, image_size: int | Sequence[int], device: str | torch.device = "cpu",
                 size_key: str = "image_size") -> None:
        self.size = as_hw(image_size, size_key)
        check_input_size(net, self.size, size_key)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @classmethod
    def load(cls, checkpoint: str | os.PathLike[str] | None, model: Mapping[str, Any] | None = None,
             image_size: int | Sequence[int] | None = None, device: str | torch.device = "cpu",
             key: str = "annotator.checkpoint") -> SegmentationPredictor:
        """Build the net from ``model`` (a Hydra config with ``_target_``) and load the exported ``checkpoint``.

        ``model`` and ``image_size`` default to those recorded in the export's sidecar ``<checkpoint>.json``
        (``samqa-train stage=segmentation`` writes both). A missing file is a ``ConfigError`` naming ``key``.
        """
        if checkpoint is None or str(checkpoint).strip() == "":
            raise ConfigError(key, "not set: the weights exported by `samqa-train stage=segmentation` (export_path)")
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ConfigError(key, f"segmentation weights not found: {path}")
        info = export_info(path)
        model = model if model is not None else (info.get("meta") or {}).get("model")
        if not model or "_target_" not in model:
            raise ConfigError(key, f"{path} records no model config (_target_): pass the net's model config")
        image_size = image_size if image_size is not None else info.get("image_size")
        if image_size is None:
            raise ConfigError(key, f"{path} records no input size: pass the image_size the net was trained at")
        net = instantiate(model, _convert_="all")
        load_segmentation_state(net, path, key)
        return cls(net, image_size, device=device)

    def _logits(self, frames_bgr: Sequence[np.ndarray]) -> torch.Tensor:
        batch = []
        for frame in frames_bgr:
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame must be a (H, W, 3) uint8 BGR array, got "
                                 f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
            rgb = resize_rgb(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), self.size)
            batch.append(torch.from_numpy(rgb).permute(2, 0, 1))
        return self.net(normalize(torch.stack(batch).to(self.device)))

    def heatmaps(self, frames_bgr: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`heatmap` of several frames in one forward pass (frames may differ in size)."""
        if len(frames_bgr) == 0:
            return []
        out = []
        with torch.inference_mode():
            logits = self._logits(frames_bgr)
            diff = (logits[:, 1:2] - logits[:, 0:1]).float()  # resizing is linear: resize the difference only
            for k, frame in enumerate(frames_bgr):
                up = F.interpolate(diff[k:k + 1], size=frame.shape[:2], mode="bilinear", align_corners=False)
                out.append(up[0, 0].cpu().numpy().astype(np.float32))
        return out

    def heatmap(self, frame_bgr: np.ndarray) -> np.ndarray:
        """(H, W) float32 foreground-minus-background logit of a (H, W, 3) uint8 BGR frame."""
        return self.heatmaps([frame_bgr])[0]
