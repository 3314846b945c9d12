"""Foreground heatmaps of video frames from a trained segmentation net (the watershed baselines' input).

``heatmap(frame)`` = foreground logit minus background logit at the frame's own resolution: positive where the
net says "animal" (it is the logit of the softmax foreground probability), so ``heatmap > 0`` is the net's mask
and its peaks are the animals' cores. The frame is prepared exactly as in training
(:mod:`models.segmentation.inputs`); the logits are resized back bilinearly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from samqa_framework.models.segmentation.checkpoint import (
    checkpoint_file,
    export_info,
    load_segmentation_state,
    net_config,
)
from samqa_framework.models.segmentation.inputs import check_input_size, normalize
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.images import as_hw, resize_rgb


class SegmentationPredictor:
    """Run ``net`` (2 classes: background, animal) on frames; it is moved to ``device`` and put in eval mode.

    ``image_size``: the net's input, ``S`` or ``[h, w]`` (the size it was trained at).
    """

    def __init__(self, net: nn.Module, image_size: int | Sequence[int], device: str | torch.device = "cpu") -> None:
        self.size = as_hw(image_size, "image_size")
        check_input_size(net, self.size, "image_size")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @classmethod
    def load(cls, checkpoint: str | os.PathLike[str] | None, model: Mapping[str, Any] | None = None,
             image_size: int | Sequence[int] | None = None,
             device: str | torch.device = "cpu") -> SegmentationPredictor:
        """Build the net and load the exported ``checkpoint``.

        The net is one of our model configs: ``model`` (a Hydra config with ``_target_``, e.g. ``conf/model/unet.yaml``)
        or, by default, the one of the class the export's sidecar ``<checkpoint>.json`` records, with the values the
        sidecar records (``models.segmentation.checkpoint.net_config``: the sidecar is data, never instantiated).
        ``image_size`` defaults to the sidecar's (``samqa-train stage=segmentation`` writes both). A missing file is a
        ``ConfigError`` naming ``checkpoint``.
        """
        path = checkpoint_file(checkpoint)
        config = net_config(path, model)
        image_size = image_size if image_size is not None else export_info(path).get("image_size")
        if image_size is None:
            raise ConfigError("checkpoint", f"{path} records no input size: pass the image_size the net was trained at")
        net = instantiate(config, _convert_="all")
        load_segmentation_state(net, path)
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
