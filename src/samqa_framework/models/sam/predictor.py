"""Box / point prompted masks for video frames, with one image-encoder pass per frame.

All coordinates are in pixels of the ORIGINAL frame (x to the right, y down; boxes are ``x1, y1, x2, y2``);
masks come back at the frame's full resolution. Resizing to the encoder's input size (longest side ->
``img_size``, then padding) is segment-anything's ``SamPredictor``'s job.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

# Prompts decoded per mask-decoder call: bounds the (chunk, H, W) float masks held at full frame size.
PROMPT_CHUNK = 16


def _frame_key(frame: np.ndarray) -> tuple[tuple[int, ...], str, bytes]:
    """Content key of a frame: reused (overwritten) video buffers are not mistaken for the previous frame."""
    data = np.ascontiguousarray(frame)
    return data.shape, data.dtype.str, hashlib.blake2b(memoryview(data).cast("B"), digest_size=16).digest()


def _as_rgb_uint8(frame: np.ndarray, bgr: bool) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(f"frame must be a uint8 numpy array, got {getattr(frame, 'dtype', type(frame).__name__)}")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or min(frame.shape[:2]) < 1:
        raise ValueError(f"frame must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {frame.shape}")
    if frame.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(frame, 3, axis=2))
    frame = frame[:, :, :3]
    return np.ascontiguousarray(frame[:, :, ::-1] if bgr else frame)


class SamMaskPredictor:
    """Prompted SAM masks for frames, caching the frame's image embedding.

    ``sam`` is moved to ``device`` and put in eval mode. ``set_frame`` runs the image encoder once; the
    ``predict_*`` methods call it themselves and reuse the embedding while the frame's content is unchanged
    (identical pixels, shape and colour order), so any number of prompt calls on one frame cost one encoder pass.
    With ``fuse`` an encoder that supports it (``TimmEncoder.fuse_for_inference``) is fused in place for speed:
    the predictor then owns the model, which can no longer be trained.
    With ``multimask`` the decoder proposes three masks per prompt and the one with the highest predicted IoU is
    kept; otherwise its single-mask output is used.
    """

    def __init__(self, sam: Sam, device: str = "cpu", multimask: bool = False, fuse: bool = True) -> None:
        if fuse and hasattr(sam.image_encoder, "fuse_for_inference"):
            sam.image_encoder.fuse_for_inference()
        self.sam = sam.to(device).eval()
        self.device = torch.device(device)
        self.multimask = multimask
        self._predictor = SamPredictor(self.sam)
        self._key: tuple | None = None
        self._bgr: bool | None = None
        self.encoder_calls = 0  # image-encoder passes so far

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) of the current frame, or None before the first."""
        return tuple(self._predictor.original_size) if self._predictor.is_image_set else None

    def set_frame(self, frame: np.ndarray, bgr: bool = True) -> None:
        """Encode ``frame`` (uint8, (H, W, 3) BGR as OpenCV reads it, or RGB with ``bgr=False``; grey allowed).

        Does nothing when the same frame content, in the same colour order, is already encoded.
        """
        key = _frame_key(frame)
        if self._predictor.is_image_set and key == self._key and bgr == self._bgr:
            return
        rgb = _as_rgb_uint8(frame, bgr)
        self._key = self._bgr = None
        with torch.inference_mode():
            self._predictor.set_image(rgb, image_format="RGB")
        self._key, self._bgr = key, bgr
        self.encoder_calls += 1

    def _ensure(self, frame: np.ndarray, bgr: bool | None) -> None:
        if bgr is None:  # keep whichever colour order the frame was set with
            if self._predictor.is_image_set and _frame_key(frame) == self._key:
                return
            bgr = True
        self.set_frame(frame, bgr=bgr)

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.frame_size
        return np.zeros((0, h, w), dtype=bool), np.zeros((0,), dtype=np.float32)

    def _decode(self, coords: torch.Tensor | None, labels: torch.Tensor | None,
                boxes: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        count = len(boxes) if boxes is not None else len(coords)
        masks_out, scores_out = [], []
        with torch.inference_mode():
            for start in range(0, count, PROMPT_CHUNK):
                part = slice(start, start + PROMPT_CHUNK)
                masks, scores, _ = self._predictor.predict_torch(
                    point_coords=None if coords is None else coords[part],
                    point_labels=None if labels is None else labels[part],
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
        boxes_t = pred.transform.apply_boxes_torch(torch.as_tensor(boxes, device=self.device), pred.original_size)
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
        coords_t = pred.transform.apply_coords_torch(torch.as_tensor(pts, device=self.device), pred.original_size)
        return self._decode(coords_t, torch.as_tensor(lab, device=self.device), None)
