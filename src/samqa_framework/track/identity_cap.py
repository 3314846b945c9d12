"""Cap a tracker's identities at the known number of animals (beyond the paper; ``tracker.max_ids``).

ByteTrack starts a new id whenever a track cannot be matched, e.g. when an animal leaves a tunnel far from where
it went in. When the number of animals N is known, such a new track must be one of the animals currently out
of view. Working in frame order over the tracker's output:

* an identity keeps the id of the track that founded it, so with fewer than N identities nothing changes;
* once N identities exist, a NEW tracker id is given the best-matching LOST identity (one of the first N
  not present in this frame): the one whose last box centre is nearest to the new box's centre (after a long
  gap the boxes rarely overlap, so IoU says nothing). Several new tracks in one frame are paired with the lost
  identities by the Hungarian method (least total distance). The track keeps that identity for its life;
  should the identity's previous track come back later, it counts as new and goes through the same choice;
* if no capped identity is lost (all N are present in this frame), the new track keeps a fresh id beyond N:
  its rows are never dropped, since a box the detector saw may still be an animal and the metrics should see it.

Online and greedy in time: a track that breaks before all N animals have been seen founds an identity of its
own, and there is no distance gate (a false-positive track can borrow a lost identity while it lives).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from samqa_framework.data.mot import MotTable


def _centres(table: MotTable) -> np.ndarray:
    return table.box[:, :2] + table.box[:, 2:] / 2


def cap_identities(table: MotTable, max_ids: int) -> MotTable:
    """``table`` (a tracker's output) with identities re-assigned as described above; rows are kept one for one."""
    if max_ids < 1:
        raise ValueError(f"max_ids must be >= 1, got {max_ids}")
    if not len(table):
        return table
    out_ids = table.track_id.copy()
    identity_of: dict[int, int] = {}  # live tracker id -> output identity
    owner: dict[int, int] = {}  # capped output identity -> the tracker id holding it now
    capped: list[int] = []  # the first max_ids identities, in order of founding
    last_centre: dict[int, np.ndarray] = {}  # capped identity -> centre of its last box
    used: set[int] = set()  # every identity handed out so far
    next_free = int(table.track_id.max()) + 1 if len(table) else 1  # above every tracker id: cannot collide
    starts = np.flatnonzero(np.r_[True, np.diff(table.frame) != 0]) if len(table) else np.zeros(0, np.int64)
    for lo, hi in zip(starts, np.r_[starts[1:], len(table)], strict=True):
        tids = table.track_id[lo:hi]
        centres = _centres(table.select(slice(lo, hi)))
        present = {identity_of[t] for t in tids.tolist() if t in identity_of}
        new = [i for i, t in enumerate(tids.tolist()) if t not in identity_of]
        for i in new:  # found identities while fewer than max_ids exist
            if len(capped) < max_ids:
                t = int(tids[i])
                identity_of[t] = owner[t] = t
                capped.append(t)
                used.add(t)
                present.add(t)
        new = [i for i in new if int(tids[i]) not in identity_of]
        lost = [k for k in capped if k not in present]
        if new and lost:
            cost = np.linalg.norm(centres[new][:, None, :] - np.stack([last_centre[k] for k in lost])[None], axis=2)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                t, k = int(tids[new[r]]), lost[c]
                identity_of.pop(owner[k], None)  # the identity's previous track, should it return, is new again
                identity_of[t], owner[k] = k, t
        for i in new:  # all capped identities present: a fresh id beyond the cap
            t = int(tids[i])
            if t not in identity_of:
                # its own tracker id, unless that names an identity already (a founder whose identity was taken)
                if t in used:
                    t_out, next_free = next_free, next_free + 1
                else:
                    t_out = t
                identity_of[t] = t_out
                used.add(t_out)
        for j, t in enumerate(tids.tolist()):
            k = identity_of[t]
            out_ids[lo + j] = k
            if k in owner:
                last_centre[k] = centres[j]
    return MotTable(table.frame, out_ids, table.box, table.conf, table.cls, table.visibility)
