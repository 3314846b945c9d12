"""Stand-ins for the models, so the annotation logic is tested apart from model quality."""

from __future__ import annotations

import hashlib

import numpy as np

from samqa_framework.annotate.association import box_iou_matrix
from samqa_framework.annotate.base import FrameLabels, Instance, instance_from_mask, mask_box
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.data.sequence import Sequence


class GtMaskPredictor:
    """An ideal box/point-prompted segmenter: answers with the ground-truth mask the prompt points at.

    ``corrupt``: {frame: "merge" | "empty" | "lost"}: on that frame box prompts all return the union of the masks
    (two prompts on one animal) or nothing; points still work, so recovery succeeds, unless the frame is "lost"
    or ``corrupt_points`` (every frame).
    """

    def __init__(self, sequence: Sequence, corrupt: dict[int, str] | None = None, corrupt_points: bool = False
                 ) -> None:
        gt = GroundTruthFrames(sequence)
        frames = sequence.frames()
        self._frame_of = {hashlib.md5(img.tobytes()).hexdigest(): i + 1 for i, img in enumerate(frames)}
        self._gt = gt
        self.corrupt = corrupt or {}
        self.corrupt_points = corrupt_points
        self.box_calls = self.point_calls = 0

    def _masks(self, image: np.ndarray) -> tuple[int, list[np.ndarray]]:
        frame = self._frame_of[hashlib.md5(image.tobytes()).hexdigest()]
        masks = [i.mask for i in self._gt.labels(frame).instances if i.mask is not None]
        return frame, masks

    def predict_boxes(self, image: np.ndarray, boxes_xyxy: np.ndarray, bgr: bool | None = None):
        self.box_calls += 1
        frame, masks = self._masks(image)
        h, w = image.shape[:2]
        out = np.zeros((len(boxes_xyxy), h, w), bool)
        if self.corrupt.get(frame) == "merge":
            out[:] = np.any(masks, axis=0) if masks else False
        elif self.corrupt.get(frame) not in ("empty", "lost") and masks:
            iou = box_iou_matrix(np.stack([mask_box(m) for m in masks]), np.asarray(boxes_xyxy))
            for k in range(len(boxes_xyxy)):
                if iou[:, k].max() > 0:
                    out[k] = masks[int(iou[:, k].argmax())]
        return out, np.ones(len(boxes_xyxy), np.float32)

    def predict_points(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray | None = None,
                       bgr: bool | None = None):
        self.point_calls += 1
        frame, masks = self._masks(image)
        h, w = image.shape[:2]
        pts = np.asarray(points).reshape(len(points), -1, 2)
        lab = np.ones(pts.shape[:2]) if labels is None else np.asarray(labels).reshape(pts.shape[:2])
        out = np.zeros((len(pts), h, w), bool)
        if not self.corrupt_points and self.corrupt.get(frame) != "lost":
            for k in range(len(pts)):
                pos = pts[k][lab[k] > 0].astype(int)
                hits = [int(m[pos[:, 1], pos[:, 0]].sum()) for m in masks]
                if hits and max(hits) > 0:
                    out[k] = masks[int(np.argmax(hits))]
        return out, np.ones(len(pts), np.float32)


def stored_labels(frame: int) -> FrameLabels:
    """A frame as a label store holds them: an instance with a mask (varying with the frame) and a box-only one."""
    mask = np.zeros((12, 16), bool)
    mask[2:5 + frame % 3, 3:9] = True
    return FrameLabels(frame, [instance_from_mask(1, mask, 0.9, "auto"),
                               Instance(2, [10, 1, 15, 6], 0.5, "manual")], prompts=frame % 2, interventions=1)
