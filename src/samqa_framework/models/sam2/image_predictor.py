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

from samqa_framework.models.sam.predictor import PROMPT_CHUNK, _as_rgb_uint8, _frame_key


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """(H, W) of the two high-resolution feature maps (strides 4, 8) and the image embedding (stride 16)."""
    return [(image_size // s, image_size // s) for s in (4, 8, 16)]


class Sam2PointPredictor:
    """Prompted SAM 2 masks for frames, caching the frame's image features.

    ``model`` is a built SAM 2 (:func:`samqa_framework.models.sam2.build.build_sam2_model`), used on its device
    in eval mode. ``set_frame`` runs the image encoder once; the ``predict_*`` methods call it themselves and
    reuse the features while the frame's content is unchanged (identical pixels, shape and colour order), so any
    number of prompt calls on one frame cost one encoder pass (``encoder_calls`` counts them).
    With ``multimask`` the decoder proposes three masks per prompt and the one with the highest predicted IoU is
    kept; otherwise its single-mask output is used (sam2 itself falls back to the best of three when that
    single mask is unstable, as in its released predictors).
    """

    def __init__(self, model: SAM2Base, multimask: bool = False) -> None:
        self.model = model.eval()
        self.multimask = multimask
        with warnings.catch_warnings():
            # its transforms call torch.jit.script, deprecated in recent torch: sam2's concern, not the user's
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            self._predictor = SAM2ImagePredictor(self.model)
        # SAM2ImagePredictor hard-codes the feature sizes of a 1024-px model; other input sizes need their own.
        self._predictor._bb_feat_sizes = backbone_feature_sizes(self.model.image_size)
        self._key: tuple | None = None
        self._bgr: bool | None = None
        self.encoder_calls = 0  # image-encoder passes so far

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the current frame, or None before the first."""
        if not self._predictor._is_image_set:
            return None
        h, w = self._predictor._orig_hw[0]
        return int(h), int(w)

    def set_frame(self, frame: np.ndarray, bgr: bool = True) -> None:
        """Encode ``frame`` (uint8, (H, W, 3) BGR as OpenCV reads it, or RGB with ``bgr=False``; grey allowed).

        Does nothing when the same frame content, in the same colour order, is already encoded.
        """
        key = _frame_key(frame)
        if self._predictor._is_image_set and key == self._key and bgr == self._bgr:
            return
        rgb = _as_rgb_uint8(frame, bgr)
        self._key = self._bgr = None
        with torch.inference_mode():
            self._predictor.set_image(rgb)  # RGB (H, W, 3) uint8
        self._key, self._bgr = key, bgr
        self.encoder_calls += 1

    def _ensure(self, frame: np.ndarray, bgr: bool | None) -> None:
        if bgr is None:  # keep whichever colour order the frame was set with
            if self._predictor._is_image_set and _frame_key(frame) == self._key:
                return
            bgr = True
        self.set_frame(frame, bgr=bgr)

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.frame_size
        return np.zeros((0, h, w), dtype=bool), np.zeros((0,), dtype=np.float32)

    def _decode(self, coords: torch.Tensor | None, labels: torch.Tensor | None,
                boxes: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        # SAM2ImagePredictor.predict squeezes a batch of one prompt differently from K > 1; its tensor-level
        # _predict takes K prompts (model input coordinates) and always returns (K, C, H, W).
        count = len(boxes) if boxes is not None else len(coords)
        masks_out, scores_out = [], []
        with torch.inference_mode():
            for start in range(0, count, PROMPT_CHUNK):
                part = slice(start, start + PROMPT_CHUNK)
                masks, scores, _ = self._predictor._predict(
                    None if coords is None else coords[part],
                    None if labels is None else labels[part],
                    boxes=None if boxes is None else boxes[part],
                    multimask_output=self.multimask,
                )
                best = scores.argmax(dim=1)  # (k,): index 0 when there is one mask per prompt
                rows = torch.arange(len(best), device=best.device)
                masks_out.append(masks[rows, best].cpu().numpy())
                scores_out.append(scores[rows, best].float().cpu().numpy())
        return np.concatenate(masks_out).astype(bool, copy=False), np.concatenate(scores_out).astype(np.float32)

    def predict_boxes(self, frame: np.ndarray, boxes_xyxy: np.ndarray,
                      bgr: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks for K boxes ``(K, 4)`` as ``x1, y1, x2, y2`` in frame pixels.

        Returns ``masks`` (K, H, W) bool at the frame's resolution and ``scores`` (K,) float32, the decoder's
        predicted IoU of each mask. ``bgr``: colour order of ``frame`` (None: as last set, else BGR).
        """
        self._ensure(frame, bgr)
        boxes = np.asarray(boxes_xyxy, dtype=np.float32)
        if boxes.size == 0:
            return self._empty()
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must have shape (K, 4), got {boxes.shape}")
        pred = self._predictor
        boxes_t = pred._transforms.transform_boxes(torch.as_tensor(boxes, device=self.device), normalize=True,
                                                   orig_hw=pred._orig_hw[0])  # (K, 2, 2)
        return self._decode(None, None, boxes_t)

    def predict_points(self, frame: np.ndarray, points: np.ndarray, labels: np.ndarray | None = None,
                       bgr: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Masks for K prompts of P points each: ``points`` (K, P, 2) as ``x, y`` in frame pixels.

        ``labels`` (K, P): 1 foreground, 0 background (default: all foreground). Returns ``masks`` (K, H, W) bool
        and ``scores`` (K,) float32 as :meth:`predict_boxes`.
        """
        self._ensure(frame, bgr)
        pts = np.asarray(points, dtype=np.float32)
        if pts.size == 0:
            return self._empty()
        if pts.ndim == 2 and pts.shape[1] == 2:  # (K, 2): one point per prompt
            pts = pts[:, None, :]
        if pts.ndim != 3 or pts.shape[2] != 2:
            raise ValueError(f"points must have shape (K, P, 2), got {pts.shape}")
        lab = np.ones(pts.shape[:2], dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        if lab.shape != pts.shape[:2] and not (lab.shape == pts.shape[:1] and pts.shape[1] == 1):
            raise ValueError(f"labels must have shape {pts.shape[:2]}, got {lab.shape}")
        lab = lab.reshape(pts.shape[:2])
        pred = self._predictor
        coords_t = pred._transforms.transform_coords(torch.as_tensor(pts, device=self.device), normalize=True,
                                                     orig_hw=pred._orig_hw[0])
        return self._decode(coords_t, torch.as_tensor(lab, dtype=torch.int, device=self.device), None)
