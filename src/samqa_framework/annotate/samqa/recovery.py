"""Automatic recovery (paper section 2): re-prompt a failing animal with equidistant grid-sampled points.

The grid covers the animal's previous box; points inside its previous mask are its positive prompts (the whole
grid when the mask is unknown), the centres of the other animals' masks inside that box are negative ones, so
the model is told which neighbour not to take.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage


def grid_points(box: np.ndarray, n: int, width: int, height: int) -> np.ndarray:
    """(n*n, 2) x, y points at the centres of an n x n grid of cells over ``box`` (clipped to the frame)."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    fr = (np.arange(n) + 0.5) / n
    xs = np.clip(x1 + fr * (x2 - x1), 0, width - 1)
    ys = np.clip(y1 + fr * (y2 - y1), 0, height - 1)
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)


def recovery_prompt(box: np.ndarray, mask: np.ndarray | None, others: Mapping[int, np.ndarray], n: int,
                    width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (P, 2) and labels (P,) (1 positive, 0 negative) for one failing animal."""
    pts = grid_points(box, n, width, height)
    if mask is not None and mask.any():
        inside = mask[pts[:, 1].astype(int), pts[:, 0].astype(int)]
        if inside.any():
            pts = pts[inside]
        else:  # a thin mask between grid points: its centre of mass stands in
            cy, cx = ndimage.center_of_mass(mask)
            pts = np.array([[cx, cy]])
    neg = []
    x1, y1, x2, y2 = box
    for other in others.values():
        if other is not None and other.any():
            cy, cx = ndimage.center_of_mass(other)
            if x1 <= cx <= x2 and y1 <= cy <= y2:
                neg.append([cx, cy])
    points = np.concatenate([pts, np.asarray(neg, dtype=np.float64).reshape(-1, 2)])
    labels = np.concatenate([np.ones(len(pts), np.int64), np.zeros(len(neg), np.int64)])
    return points, labels
