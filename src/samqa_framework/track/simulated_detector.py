"""A stand-in detector that degrades ground-truth boxes: jitter, misses, false positives.

Used to see how the tracker and the metrics respond to detector noise before any detector is trained
(and to test the tracking stage without a trained model). Deterministic by seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from samqa_framework.data.mot import MotTable


class SimulatedDetector:
    def __init__(self, jitter: float = 0.05, miss_rate: float = 0.05, false_positives: float = 0.02,
                 score_range: tuple[float, float] = (0.6, 0.99), seed: int = 0) -> None:
        """``jitter``: std of box-edge noise as a fraction of box size; ``miss_rate``: chance each animal is
        missed in a frame; ``false_positives``: expected spurious boxes per frame."""
        if not 0 <= miss_rate <= 1:
            raise ValueError(f"miss_rate must be in [0, 1], got {miss_rate}")
        self.jitter, self.miss_rate, self.false_positives = float(jitter), float(miss_rate), float(false_positives)
        self.score_range = tuple(score_range)
        self.seed = int(seed)

    def detections(self, gt: MotTable, num_frames: int,
                   image_size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, (K, 6) x1 y1 x2 y2 score cls)`` for frames 1..num_frames (rows flagged 0 skipped)."""
        rng = np.random.default_rng(self.seed)
        width, height = image_size
        lo, hi = self.score_range
        sizes = gt.box[:, 2:].mean(axis=0) if len(gt) else np.array([width / 10, height / 10])
        for frame in range(1, num_frames + 1):
            rows = gt.rows_of(frame)
            rows = rows.select(rows.conf > 0)
            keep = rng.random(len(rows)) >= self.miss_rate
            xyxy = rows.xyxy[keep]
            wh = np.tile(rows.box[keep, 2:], 2)  # (K, 4): w, h, w, h scales the noise of each edge
            xyxy = xyxy + rng.normal(0.0, self.jitter, xyxy.shape) * wh
            n_fp = rng.poisson(self.false_positives)
            if n_fp:
                centre = rng.random((n_fp, 2)) * [width, height]
                half = sizes / 2 * rng.uniform(0.6, 1.4, (n_fp, 1))
                xyxy = np.vstack([xyxy, np.hstack([centre - half, centre + half])])
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
            scores = rng.uniform(lo, hi, len(xyxy))
            yield frame, np.hstack([xyxy, scores[:, None], np.zeros((len(xyxy), 1))])
