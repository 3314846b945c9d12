"""IoU association between the instances of consecutive frames (Hungarian, scipy)."""

from __future__ import annotations

from collections.abc import Sequence as Seq

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of ``x1, y1, x2, y2`` boxes."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def mask_iou_matrix(a: Seq[np.ndarray], b: Seq[np.ndarray]) -> np.ndarray:
    """(N, M) IoU of bool masks of one size."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    fa = np.stack([m.reshape(-1) for m in a]).astype(np.float32)
    fb = np.stack([m.reshape(-1) for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float64)


def match(iou: np.ndarray, min_iou: float = 0.0) -> list[tuple[int, int]]:
    """Pairs (row, col) of the maximum-IoU one-to-one assignment, keeping pairs with IoU > ``min_iou``."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] > min_iou]


def carry_ids(prev_ids: Seq[int], iou: np.ndarray, next_id: int, min_iou: float = 0.0) -> tuple[list[int], int]:
    """Identities for the current instances (the columns of ``iou``, previous instances as rows): a matched
    instance keeps its previous identity, any other gets a new one from ``next_id``. Returns (ids, next free id)."""
    ids = [-1] * iou.shape[1]
    for r, c in match(iou, min_iou):
        ids[c] = int(prev_ids[r])
    for c, value in enumerate(ids):
        if value < 0:
            ids[c], next_id = next_id, next_id + 1
    return ids, next_id
