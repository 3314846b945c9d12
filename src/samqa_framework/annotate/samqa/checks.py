"""The spatio-temporal consistency check (paper section 2): which animals' masks fail it.

- overlap condition: two masks of one frame whose IoU exceeds ``overlap_thresh`` both fail (two prompts locked
  onto one animal, or one mask swallowing its neighbour);
- size condition: a mask whose area divided by the area of that animal's last manually prompted mask lies
  outside ``size_ratio`` fails (a lost, shrunk or merged mask);
- an empty mask fails (the animal was lost);
- count condition (beyond the paper, ``expected_count``): fewer animals than expected means one was lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from samqa_framework.annotate.association import mask_iou_matrix


def failing_ids(masks: Mapping[int, np.ndarray], reference_area: Mapping[int, float], overlap_thresh: float,
                size_ratio: Sequence[float]) -> dict[int, str]:
    """``{track_id: reason}`` of every mask that fails (reasons: empty, overlap, size)."""
    ids = list(masks)
    fails: dict[int, str] = {}
    areas = {i: float(masks[i].sum()) for i in ids}
    for i in ids:
        if areas[i] == 0:
            fails[i] = "empty"
    live = [i for i in ids if i not in fails]
    iou = mask_iou_matrix([masks[i] for i in live], [masks[i] for i in live])
    for a in range(len(live)):
        for b in range(a + 1, len(live)):
            if iou[a, b] > overlap_thresh:
                fails.setdefault(live[a], "overlap")
                fails.setdefault(live[b], "overlap")
    lo, hi = float(size_ratio[0]), float(size_ratio[1])
    for i in live:
        ref = reference_area.get(i)
        if ref and not lo <= areas[i] / ref <= hi:
            fails.setdefault(i, "size")
    return fails
