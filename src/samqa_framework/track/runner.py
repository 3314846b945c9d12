"""Feed per-frame detections to an ultralytics tracker and collect MOT rows (``ByteTrack.track`` uses this)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ultralytics.engine.results import Boxes

from samqa_framework.data.mot import MotTable

BOX_SOURCES = ("kalman", "detection")


def track_detections(tracker, detections: Iterable[tuple[int, np.ndarray]], image_size: tuple[int, int],
                     box_source: str = "kalman") -> MotTable:
    """Feed ``(frame, (K, 6) x1 y1 x2 y2 score cls)`` in frame order to an ultralytics tracker.

    Every frame must be fed, also those without detections, so that lost tracks age correctly.
    ``box_source``: ``kalman`` reports the tracker's filtered box, as ultralytics' ``track()`` does;
    ``detection`` reports the matched detection's own box. ByteTrack's Kalman filter models a slowly
    changing aspect ratio (pedestrians), so for turning animals its boxes lag the detections.
    """
    if box_source not in BOX_SOURCES:
        raise ValueError(f"box_source must be 'kalman' or 'detection', got {box_source!r}")
    width, height = image_size
    frames, ids, boxes, scores = [], [], [], []
    for frame, raw in detections:
        det = np.asarray(raw, dtype=np.float32).reshape(-1, 6)
        out = tracker.update(Boxes(det, (height, width)))
        for *kalman_xyxy, tid, score, _cls, idx in out:
            x1, y1, x2, y2 = det[int(idx), :4] if box_source == "detection" else kalman_xyxy
            frames.append(frame)
            ids.append(int(tid))
            boxes.append((x1, y1, x2 - x1, y2 - y1))
            scores.append(score)
    if not frames:
        return MotTable.empty()
    return MotTable(np.array(frames), np.array(ids), np.array(boxes), np.array(scores))
