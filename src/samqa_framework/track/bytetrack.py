"""ByteTrack from ultralytics, configured by our ``tracker`` config (the paper's parameters by default).

One ``ByteTrack`` holds the settings; every ``track()`` call builds a fresh ultralytics ``BYTETracker`` (one per
sequence, so no state or id counter leaks between videos). Two keys are ours, not ultralytics': ``box_source``
(which box a track reports), ``max_ids`` (the known-animal-count identity cap, ``track.identity_cap``) and
``nms_iou`` (an extra class-agnostic NMS on the detections before they reach the tracker).
"""

from __future__ import annotations

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
from samqa_framework.utils.errors import ConfigError

CONFIG_KEY = "tracker"  # where the app configs hold these settings; errors name e.g. tracker.track_buffer
# The paper's association parameters; conf/tracker/bytetrack.yaml spells the same values out for users.
PAPER = {"track_high_thresh": 0.5, "track_low_thresh": 0.1, "new_track_thresh": 0.9, "match_thresh": 0.9,
         "track_buffer": 120, "fuse_score": False}
OURS = {"box_source": "kalman", "max_ids": None, "nms_iou": None}
THRESHOLDS = ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh")


def _key(name: str) -> str:
    return f"{CONFIG_KEY}.{name}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(params: dict[str, Any]) -> None:
    for name in THRESHOLDS:
        value = params[name]
        if not _is_number(value) or not 0 <= value <= 1 or math.isnan(value):
            raise ConfigError(_key(name), f"must be a number in [0, 1], got {value!r}")
    if params["track_low_thresh"] > params["track_high_thresh"]:
        # ultralytics' second association takes scores in (low, high): with low > high it silently gets nothing
        raise ConfigError(_key("track_low_thresh"), f"must be <= track_high_thresh "
                          f"({params['track_high_thresh']}), got {params['track_low_thresh']}")
    buffer = params["track_buffer"]
    if not isinstance(buffer, int) or isinstance(buffer, bool) or buffer < 1:
        raise ConfigError(_key("track_buffer"), f"must be a whole number of frames >= 1, got {buffer!r}")
    if not isinstance(params["fuse_score"], bool):
        raise ConfigError(_key("fuse_score"), f"must be true or false, got {params['fuse_score']!r}")
    if params["box_source"] not in BOX_SOURCES:
        raise ConfigError(_key("box_source"), f"must be one of {', '.join(BOX_SOURCES)}, got {params['box_source']!r}")
    cap = params["max_ids"]
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise ConfigError(_key("max_ids"), f"must be null (no cap) or a whole number >= 1, got {cap!r}")
    nms = params["nms_iou"]
    if nms is not None and (not _is_number(nms) or not 0 < nms <= 1):
        raise ConfigError(_key("nms_iou"), f"must be null (off) or a number in (0, 1], got {nms!r}")


class ByteTrack:
    """ByteTrack's settings, and ``track()`` to run it over one sequence's detections.

    ``box_source``: ``kalman`` reports the tracker's filtered box (what ultralytics' ``track()`` reports),
    ``detection`` the matched detection's own box. ``max_ids``: null, or the known number of animals
    (identities beyond it are mapped back onto lost ones, see ``track.identity_cap``).
    A lost track is kept for ``track_buffer`` frames (this ultralytics version does not scale it by fps).
    """

    def __init__(self, *, track_high_thresh: float = PAPER["track_high_thresh"],
                 track_low_thresh: float = PAPER["track_low_thresh"],
                 new_track_thresh: float = PAPER["new_track_thresh"], match_thresh: float = PAPER["match_thresh"],
                 track_buffer: int = PAPER["track_buffer"], fuse_score: bool = PAPER["fuse_score"],
                 box_source: str = OURS["box_source"], max_ids: int | None = OURS["max_ids"],
                 nms_iou: float | None = OURS["nms_iou"],
                 **unknown: Any) -> None:
        # Taken and refused here (not left to Python's TypeError) so that a typo in a user's tracker yaml names
        # the key and the valid ones, when the tracker is built, i.e. before any training starts.
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(_key(name), f"unknown key; known keys: {', '.join([*PAPER, *OURS])}")
        params = {"track_high_thresh": track_high_thresh, "track_low_thresh": track_low_thresh,
                  "new_track_thresh": new_track_thresh, "match_thresh": match_thresh, "track_buffer": track_buffer,
                  "fuse_score": fuse_score, "box_source": box_source, "max_ids": max_ids,
                  "nms_iou": nms_iou}
        _validate(params)
        for name, value in params.items():
            object.__setattr__(self, name, value)

    # The settings are read-only, so that a tracker shared by several study variants cannot drift; use replace().
    track_high_thresh: float
    track_low_thresh: float
    new_track_thresh: float
    match_thresh: float
    track_buffer: int
    fuse_score: bool
    box_source: str
    max_ids: int | None
    nms_iou: float | None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ByteTrack settings are read-only; use replace({name}=...)")

    def params(self) -> dict[str, Any]:
        """Every setting (ultralytics' and ours), as the config spells them."""
        return {name: getattr(self, name) for name in (*PAPER, *OURS)}

    def replace(self, **changes: Any) -> ByteTrack:
        """A copy with some settings changed (checked like the constructor), e.g. ``replace(max_ids=2)``."""
        return ByteTrack(**{**self.params(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTrack) and other.params() == self.params()

    def __hash__(self) -> int:
        return hash(tuple(self.params().items()))

    def __repr__(self) -> str:
        return f"ByteTrack({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"

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

    def save_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings as an ultralytics tracker yaml (``model.track(tracker=path)`` accepts it) with our
        two keys after them; ultralytics ignores those, so its own ``track()`` applies neither."""
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
            raise ConfigError(_key("tracker_type"), f"{path}: only bytetrack is supported, got {kind!r}")
        return cls(**data)


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
