"""ByteTrack from ultralytics, configured by our ``tracker`` config (the paper's parameters by default).

One ``ByteTrack`` holds the settings; every ``track()`` call builds a fresh ultralytics ``BYTETracker`` (one per
sequence, so no state or id counter leaks between videos). Three keys are ours, not ultralytics': ``box_source``
(which box a track reports), ``max_ids`` (the known-animal-count identity cap, ``track.identity_cap``) and
``nms_iou`` (an extra class-agnostic NMS on the detections before they reach the tracker).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import YAML, IterableSimpleNamespace

from samqa_framework.data.mot import MotTable
from samqa_framework.track.identity_cap import cap_identities
from samqa_framework.track.runner import BOX_SOURCES, track_detections
from samqa_framework.utils.errors import ConfigError, DataFormatError

# The paper's association parameters; conf/tracker/bytetrack.yaml spells the same values out for users.
PAPER = {"track_high_thresh": 0.5, "track_low_thresh": 0.1, "new_track_thresh": 0.9, "match_thresh": 0.9,
         "track_buffer": 120, "fuse_score": False}
OURS = {"box_source": "kalman", "max_ids": None, "nms_iou": None}
THRESHOLDS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class ByteTrack:
    """ByteTrack's settings, and ``track()`` to run it over one sequence's detections.

    ``box_source``: ``kalman`` reports the tracker's filtered box (what ultralytics' ``track()`` reports),
    ``detection`` the matched detection's own box. ``max_ids``: null, or the known number of animals
    (identities beyond it are mapped back onto lost ones, see ``track.identity_cap``).
    A lost track is kept for ``track_buffer`` frames (this ultralytics version does not scale it by fps).
    Frozen, so that a tracker shared by several study variants cannot drift: ``dataclasses.replace`` makes a
    variant (checked like the constructor).
    """

    track_high_thresh: float = PAPER["track_high_thresh"]
    track_low_thresh: float = PAPER["track_low_thresh"]
    new_track_thresh: float = PAPER["new_track_thresh"]
    match_thresh: float = PAPER["match_thresh"]
    track_buffer: int = PAPER["track_buffer"]
    fuse_score: bool = PAPER["fuse_score"]
    box_source: str = OURS["box_source"]
    max_ids: int | None = OURS["max_ids"]
    nms_iou: float | None = OURS["nms_iou"]

    def __post_init__(self) -> None:
        for name in THRESHOLDS:
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 1 or math.isnan(value):
                raise ConfigError(name, f"must be a number in [0, 1], got {value!r}")
        if self.track_low_thresh > self.track_high_thresh:
            # ultralytics' second association takes scores in (low, high): with low > high it silently gets nothing
            raise ConfigError("track_low_thresh", f"must be <= track_high_thresh ({self.track_high_thresh}), got "
                                                  f"{self.track_low_thresh}")
        buffer = self.track_buffer
        if not isinstance(buffer, int) or isinstance(buffer, bool) or buffer < 1:
            raise ConfigError("track_buffer", f"must be a whole number of frames >= 1, got {buffer!r}")
        if not isinstance(self.fuse_score, bool):
            raise ConfigError("fuse_score", f"must be true or false, got {self.fuse_score!r}")
        if self.box_source not in BOX_SOURCES:
            raise ConfigError("box_source", f"must be one of {', '.join(BOX_SOURCES)}, got {self.box_source!r}")
        cap = self.max_ids
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise ConfigError("max_ids", f"must be null (no cap) or a whole number >= 1, got {cap!r}")
        nms = self.nms_iou
        if nms is not None and (not _is_number(nms) or not 0 < nms <= 1):
            raise ConfigError("nms_iou", f"must be null (off) or a number in (0, 1], got {nms!r}")

    @classmethod
    def from_config(cls, **settings: Any) -> ByteTrack:
        """The tracker of a config's settings (``conf/tracker``'s target): a key that is no setting is refused by
        name, with the valid ones (not left to Python's TypeError), when the tracker is built, i.e. before any
        training starts."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown key; known keys: {', '.join(known)}")
        return cls(**settings)

    def ultralytics_args(self) -> dict[str, Any]:
        """Exactly the namespace given to ultralytics' ``BYTETracker`` (its tracker yaml's keys)."""
        return {"tracker_type": "bytetrack", **{k: getattr(self, k) for k in PAPER}}

    def track(self, detections: Iterable[tuple[int, np.ndarray]], image_size: tuple[int, int]) -> MotTable:
        """Track one sequence: ``(frame, (K, 6) x1 y1 x2 y2 score cls)`` for EVERY frame in order (empty arrays for
        frames without detections, so lost tracks age), ``image_size`` = (width, height)."""
        tracker = BYTETracker(IterableSimpleNamespace(**self.ultralytics_args()))
        if self.nms_iou is not None:
            detections = _suppress(detections, self.nms_iou)
        table = track_detections(tracker, detections, image_size, box_source=self.box_source)
        return table if self.max_ids is None else cap_identities(table, self.max_ids)

    def diagnose(self, conf: np.ndarray, tracks: int) -> dict[str, Any]:
        """Why a tracker's score may be zero or low, in figures: the detection confidences ``conf`` it was given
        against its thresholds, and the number of ``tracks`` it started. ``why`` is a sentence when the figures
        explain a failure (nothing detected, no track started, tracks that can hardly start), else None."""
        conf = np.asarray(conf, dtype=np.float64).ravel()
        n = len(conf)
        figures: dict[str, Any] = {
            "detections": n, "tracks": int(tracks),
            "median_conf": round(float(np.median(conf)), 3) if n else None,
            "max_conf": round(float(conf.max()), 3) if n else None,
            "share_new_track": round(float((conf >= self.new_track_thresh).mean()), 4) if n else 0.0,
            "share_high": round(float((conf >= self.track_high_thresh).mean()), 4) if n else 0.0}
        spread = f"max conf {figures['max_conf']:.2f}, median {figures['median_conf']:.2f}" if n else ""
        if n == 0:
            why = "no detection on the evaluation videos"
        elif tracks == 0 and figures["share_new_track"] == 0:
            why = f"no track started: no detection >= new_track_thresh {self.new_track_thresh:g} ({spread})"
        elif tracks == 0:  # a track starts unconfirmed and needs a match in the next frame
            k = round(figures["share_new_track"] * n)
            why = (f"no track started: {k} detection{'s' * (k != 1)} >= new_track_thresh {self.new_track_thresh:g}, "
                   f"none matched again in the next frame ({spread})")
        elif figures["share_new_track"] < 0.01:
            why = (f"tracks start late: {100 * figures['share_new_track']:.1f}% of detections >= new_track_thresh "
                   f"{self.new_track_thresh:g} ({spread})")
        elif figures["share_high"] < 0.5:
            why = (f"most detections below track_high_thresh {self.track_high_thresh:g}: only the second "
                   f"association sees them ({spread})")
        else:
            why = None
        return {**figures, "why": why}

    def save_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings as an ultralytics tracker yaml (``model.track(tracker=path)`` accepts it) with our
        own keys after them; ultralytics ignores those, so its own ``track()`` applies none of them."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ours = yaml.safe_dump({k: getattr(self, k) for k in OURS}, sort_keys=False)
        path.write_text("# ByteTrack settings used by samqa-framework, in ultralytics' tracker format\n"
                        + yaml.safe_dump(self.ultralytics_args(), sort_keys=False)
                        + "# samqa-framework's own keys (ultralytics ignores them: its model.track() reports the "
                          "kalman box\n# and caps no identities)\n" + ours, encoding="utf-8")
        return path

    @classmethod
    def load_yaml(cls, path: str | os.PathLike[str]) -> ByteTrack:
        """Read a file written by ``save_yaml``, or any ultralytics ByteTrack yaml (our keys then default)."""
        data = YAML.load(path)
        kind = data.pop("tracker_type", "bytetrack")
        if kind != "bytetrack":
            raise DataFormatError(path, f"tracker_type: only bytetrack is supported, got {kind!r}")
        try:
            return cls.from_config(**data)
        except ConfigError as exc:  # the file is at fault, not a config
            raise DataFormatError(path, f"{exc.key}: {exc.message}") from exc


def _suppress(detections: Iterable[tuple[int, np.ndarray]], iou: float) -> Iterator[tuple[int, np.ndarray]]:
    """Class-agnostic NMS per frame (torchvision's): of boxes overlapping by more than ``iou``, the best-scored stays.

    A detector trained on labels of inconsistent extent can fire twice on one animal with boxes that overlap less
    than its own NMS threshold (ultralytics: 0.7); ByteTrack then keeps a second track on the same animal.
    """
    import torch
    from torchvision.ops import nms

    for frame, raw in detections:
        det = np.asarray(raw, dtype=np.float32).reshape(-1, 6)
        if len(det) > 1:
            keep = nms(torch.from_numpy(det[:, :4]), torch.from_numpy(det[:, 4]), iou).numpy()
            det = det[np.sort(keep)]
        yield frame, det


def frames_of(dets: MotTable, num_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame 1..num_frames with its (K, 6) x1 y1 x2 y2 score cls detections (ByteTrack must see each)."""
    by_frame = dict(dets.frame_slices())
    for frame in range(1, num_frames + 1):
        rows = by_frame.get(frame)
        if rows is None:
            yield frame, np.zeros((0, 6), np.float32)
        else:
            yield frame, np.hstack([rows.xyxy, rows.conf[:, None], np.zeros((len(rows), 1))]).astype(np.float32)
