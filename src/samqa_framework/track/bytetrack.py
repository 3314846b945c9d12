"""ByteTrack from ultralytics, built from our ``tracker`` config (the paper's parameters by default)."""

from __future__ import annotations

from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import IterableSimpleNamespace


def build_bytetrack(*, track_high_thresh: float, track_low_thresh: float,
                    new_track_thresh: float, match_thresh: float, track_buffer: int,
                    fuse_score: bool = False) -> BYTETracker:
    """A standalone ``BYTETracker``; feed it ultralytics ``Boxes`` (x1, y1, x2, y2, score, cls) per frame.

    A lost track is kept for ``track_buffer`` frames (this ultralytics version does not scale it by fps).
    """
    args = IterableSimpleNamespace(tracker_type="bytetrack", track_high_thresh=track_high_thresh,
                                   track_low_thresh=track_low_thresh, new_track_thresh=new_track_thresh,
                                   match_thresh=match_thresh, track_buffer=track_buffer, fuse_score=fuse_score)
    return BYTETracker(args)
