"""Mask clean-up before the quality checks (the paper's Algorithm 1, lost from our copy; rebuilt from its text:
motion blur makes SAM add fragments and holes). Steps, each optional, in this order:

1. ``opening_radius``: morphological opening with a disk, removing thin spurs and speckle;
2. ``largest_component``: keep the largest 8-connected component (one animal is one blob);
3. ``fill_holes``: fill enclosed holes.

Opening before the component step keeps a thin bridge from gluing a fragment to the animal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import disk


@dataclass(frozen=True)
class CleanupParams:
    largest_component: bool = True
    fill_holes: bool = True
    opening_radius: int = 2


def clean_mask(mask: np.ndarray, params: CleanupParams) -> np.ndarray:
    """A cleaned copy of bool ``mask`` (H, W); an empty mask stays empty."""
    out = np.asarray(mask, dtype=bool)
    if not out.any():
        return out.copy()
    if params.opening_radius > 0:
        opened = ndimage.binary_opening(out, structure=disk(params.opening_radius))
        out = opened if opened.any() else out  # a very thin animal (tail only) is kept rather than erased
    if params.largest_component:
        labels, n = ndimage.label(out, structure=np.ones((3, 3), dtype=bool))
        if n > 1:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            out = labels == int(sizes.argmax())
    if params.fill_holes:
        out = ndimage.binary_fill_holes(out)
    return out
