"""Box / point prompted SAM 2 masks for video frames, with one image-encoder pass per frame.

The same interface as :class:`samqa_framework.models.sam.predictor.SamMaskPredictor`: coordinates in pixels of
the ORIGINAL frame (x right, y down; boxes ``x1, y1, x2, y2``), masks back at the frame's full resolution.
Resizing to the model's square input is ``SAM2ImagePredictor``'s job (sam2 stretches, it does not pad).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_image_predictor import SAM2ImagePredictor

from samqa_framework.models.mask_predictor import MaskPredictorBase


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """(H, W) of the two high-resolution feature maps (strides 4, 8) and the image embedding (stride 16)."""
    return [(image_size // s, image_size // s) for s in (4, 8, 16)]


class Sam2PointPredictor(MaskPredictorBase):
    """Prompted SAM 2 masks for frames, caching the frame's image features (see :class:`MaskPredictorBase`).

    ``model`` is a built SAM 2 (:func:`samqa_framework.models.sam2.build.build_sam2_model`), used on its device
    in eval mode. With ``multimask`` the best of three masks is kept; otherwise the single-mask output (sam2
    itself falls back to the best of three when that single mask is unstable, as in its released predictors).
    """

    def __init__(self, model: SAM2Base, multimask: bool = False) -> None:
        super().__init__(multimask)
        self.model = model.eval()
        with warnings.catch_warnings():
            # its transforms call torch.jit.script, deprecated in recent torch: sam2's concern, not the user's
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            self._predictor = SAM2ImagePredictor(self.model)
        # SAM2ImagePredictor hard-codes the feature sizes of a 1024-px model; other input sizes need their own.
        self._predictor._bb_feat_sizes = backbone_feature_sizes(self.model.image_size)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def frame_size(self) -> tuple[int, int] | None:
        if not self._predictor._is_image_set:
            return None
        h, w = self._predictor._orig_hw[0]
        return int(h), int(w)

    def _encode(self, rgb: np.ndarray) -> None:
        self._predictor.set_image(rgb)  # RGB (H, W, 3) uint8

    def _boxes_to_model(self, boxes: torch.Tensor) -> torch.Tensor:
        return self._predictor._transforms.transform_boxes(boxes, normalize=True,
                                                           orig_hw=self._predictor._orig_hw[0])  # (K, 2, 2)

    def _points_to_model(self, points: torch.Tensor) -> torch.Tensor:
        return self._predictor._transforms.transform_coords(points, normalize=True,
                                                            orig_hw=self._predictor._orig_hw[0])

    def _predict_chunk(self, coords: torch.Tensor | None, labels: torch.Tensor | None, boxes: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        # SAM2ImagePredictor.predict squeezes a batch of one prompt differently from K > 1; its tensor-level
        # _predict takes K prompts (model input coordinates) and always returns (K, C, H, W).
        masks, scores, _ = self._predictor._predict(coords, None if labels is None else labels.int(), boxes=boxes,
                                                    multimask_output=self.multimask)
        return masks, scores
