"""Data-set builders for existing labels: SLEAP projects and MOTChallenge folders.

Each builder is instantiated by Hydra (``_target_``) and called as ``builder.build(out_dir)``; it writes
``<out_dir>/<seq>/`` in our MOTChallenge layout (see ``sequence.py``) plus ``<out_dir>/dataset.yaml``
and returns the manifest. Every sequence folder is built under a temporary name and renamed into place
(``atomic_dir``), so an interrupted import never leaves a half-written sequence behind.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from samqa_framework.data.claim import claimed
from samqa_framework.data.mot import MotTable, write_mot
from samqa_framework.data.sequence import VIDEO_NAMES, DatasetManifest, SeqInfo, Sequence
from samqa_framework.data.video import ImageFolderReader, VideoReader, VideoWriter
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.io import atomic_dir
from samqa_framework.utils.names import check_name

log = logging.getLogger(__name__)


def _max_per_frame(table: MotTable) -> int:
    """Most rows with a non-zero flag in any one frame (= animals visible at once)."""
    frames = table.frame[table.conf > 0]
    return int(np.bincount(frames).max()) if len(frames) else 0


def check_splits(splits: Mapping[str, SequenceOf[int | None]], num_frames: int,
                 video: str = "the video") -> dict[str, tuple[int, int]]:
    """Frame ranges ``[start, stop)`` per split (``stop`` None: to the end), checked against the video's length; a
    ConfigError names ``splits.<split>`` (and ``video``). Overlapping ranges are legal but logged: frames in two
    splits leak training data into evaluation."""
    out: dict[str, tuple[int, int]] = {}
    for split, given in splits.items():
        if "/" in split or split.startswith("."):
            raise ConfigError(f"splits.{split}", "split names become folder names: no '/' or leading '.'")
        rng = list(given)
        stop = num_frames if len(rng) == 2 and rng[1] is None else rng[1] if len(rng) == 2 else None
        if len(rng) != 2 or rng[0] is None or stop is None or not 0 <= rng[0] < stop <= num_frames:
            raise ConfigError(f"splits.{split}", f"expected a frame range [start, stop) with 0 <= start < stop <= "
                              f"{num_frames} (the length of {video}; stop null: to the end), got {rng}")
        out[split] = (int(rng[0]), int(stop))
    ranges = sorted(out.values())
    for (a0, a1), (b0, _) in itertools.pairwise(ranges):
        if b0 < a1:
            log.warning("splits: frame ranges [%d, %d) and [%d, ...) overlap", a0, a1, b0)
    return out


class SleapImporter:
    """Turn a SLEAP project (``.slp``) into one sequence per frame range ("split").

    A box is the bounding box of an instance's visible keypoints, grown by ``margin_frac`` of its size
    (half on each side) and by ``margin_px`` on every side, then clipped to the image: keypoints mark
    joints and leg tips, not the body outline, so the tight box would cut the animal. Identities are
    the project's track indices + 1, hence stable across splits.
    """

    def __init__(self, slp: str, video: str | None = None, name: str = "sleap", species: str = "animal",
                 splits: Mapping[str, SequenceOf[int]] | None = None, margin_frac: float = 0.1,
                 margin_px: float = 4.0, use_predicted: bool = False, link_video: bool = True,
                 video_index: int = 0) -> None:
        self.slp = Path(slp).expanduser()
        self.video = video
        self.name = check_name(name, "data set name", key="name")  # its sequences' folder names start with it
        self.species = species
        # Hydra hands over DictConfig/ListConfig: copy into plain types. None = first half / second half.
        self.splits = None if splits is None else {str(k): [int(x) for x in v] for k, v in splits.items()}
        self.margin_frac = float(margin_frac)
        self.margin_px = float(margin_px)
        self.use_predicted = bool(use_predicted)
        self.link_video = bool(link_video)
        self.video_index = int(video_index)
        for key, value in (("margin_frac", self.margin_frac), ("margin_px", self.margin_px)):
            if value < 0:
                raise ConfigError(key, f"must be >= 0, got {value}")
        if self.splits is not None and not self.splits:
            raise ConfigError("splits", "no splits given (leave it unset for first half / second half)")

    # -- inputs -----------------------------------------------------------------------------------------

    def _load_labels(self) -> Any:
        import sleap_io  # scoped: only this builder needs it

        if not self.slp.is_file():
            raise ConfigError("slp", f"SLEAP file not found: {self.slp}")
        try:
            labels = sleap_io.load_slp(str(self.slp), open_videos=False)
        except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            # h5py and sleap-io fail with these on a file that is not a valid .slp: name the file instead
            raise DataFormatError(self.slp, f"cannot read SLEAP labels ({exc.__class__.__name__}: {exc})") from None
        if not 0 <= self.video_index < len(labels.videos):
            raise ConfigError("video_index", f"{self.slp} holds {len(labels.videos)} video(s), "
                              f"index {self.video_index} does not exist")
        return labels

    def _resolve_video(self, labels: Any) -> Path:
        """The video file: ``video`` if given, else the one the project names, tried as given and then
        next to the .slp (projects are often moved together with their video)."""
        given = self.video if self.video is not None else labels.videos[self.video_index].filename
        if not isinstance(given, str | os.PathLike):
            raise ConfigError("video", f"{self.slp} uses an image-sequence video; set it to a "
                              "video file")
        p = Path(given).expanduser()
        candidates = [p] if p.is_absolute() else [p, self.slp.parent / p]
        candidates.append(self.slp.parent / p.name)
        for c in candidates:
            if c.is_file():
                return c.resolve()
        tried = ", ".join(dict.fromkeys(str(c) for c in candidates))
        raise ConfigError("video", f"video {given!r} not found (tried {tried}); set it to the video file")

    def _check_splits(self, num_frames: int) -> dict[str, tuple[int, int]]:
        half = num_frames // 2
        default = {"train": [0, half], "eval": [half, num_frames]}
        return check_splits(self.splits if self.splits is not None else default, num_frames)

    # -- boxes ------------------------------------------------------------------------------------------

    def _box(self, pts: np.ndarray, width: int, height: int) -> np.ndarray | None:
        """(left, top, w, h) around the visible points, or None if nothing is left after clipping."""
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = self.margin_frac * (hi - lo) / 2 + self.margin_px
        x0, y0 = np.maximum(lo - pad, 0.0)
        x1, y1 = np.minimum(hi + pad, [width, height])
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            return None
        return np.array([x0, y0, x1 - x0, y1 - y0])

    def _tables(self, labels: Any, splits: dict[str, tuple[int, int]], width: int,
                height: int) -> dict[str, MotTable]:
        video = labels.videos[self.video_index]
        track_index = {id(t): i for i, t in enumerate(labels.tracks)}
        rows: dict[str, list[tuple[int, int, np.ndarray, float]]] = {s: [] for s in splits}
        skipped = {"fewer than 2 visible keypoints": 0, "no track": 0, "a second instance of the same track": 0,
                   "box outside the image": 0}
        first_skip: dict[str, str] = {}

        def skip(reason: str, frame_idx: int) -> None:
            skipped[reason] += 1
            first_skip.setdefault(reason, f"frame index {frame_idx}")

        for lf in labels.labeled_frames:
            if lf.video is not video and lf.video != video:
                continue
            instances = list(lf.user_instances)
            if not instances and self.use_predicted:
                instances = list(lf.predicted_instances)
            if not instances:
                continue
            targets = [s for s, (a, b) in splits.items() if a <= lf.frame_idx < b]
            if not targets:
                continue
            seen: set[int] = set()
            for inst in instances:
                pts = inst.numpy()
                visible = np.isfinite(pts).all(axis=1)
                if visible.sum() < 2:
                    skip("fewer than 2 visible keypoints", lf.frame_idx)
                    continue
                if inst.track is None:
                    skip("no track", lf.frame_idx)
                    continue
                tid = track_index.get(id(inst.track))
                if tid is None:  # a track object not in labels.tracks: match by value
                    tid = labels.tracks.index(inst.track)
                if tid in seen:
                    skip("a second instance of the same track", lf.frame_idx)
                    continue
                box = self._box(pts[visible], width, height)
                if box is None:
                    skip("box outside the image", lf.frame_idx)
                    continue
                seen.add(tid)
                for s in targets:
                    rows[s].append((lf.frame_idx - splits[s][0] + 1, tid + 1, box, visible.mean()))
        for reason, n in skipped.items():
            if n:
                log.warning("%s: skipped %d instance(s) with %s (first at %s)", self.slp, n, reason,
                            first_skip[reason])
        tables = {}
        for s, r in rows.items():
            if not r:
                tables[s] = MotTable.empty()
                continue
            frame, tid, box, vis = zip(*r, strict=True)
            tables[s] = MotTable(np.array(frame), np.array(tid), np.stack(box), np.ones(len(r)),
                                 np.ones(len(r), np.int64), np.array(vis))
        return tables

    # -- output -----------------------------------------------------------------------------------------

    def build(self, out_dir: Path) -> DatasetManifest:
        """Import into ``out_dir``: a new or empty folder, or one an import made (``data.claim``), never a user's."""
        out_dir = Path(out_dir)
        with claimed(out_dir, {"importer": type(self).__name__, "slp": str(self.slp.resolve())}, reuse=False):
            return self._build(out_dir)

    def _build(self, out_dir: Path) -> DatasetManifest:
        labels = self._load_labels()
        video = self._resolve_video(labels)
        src = VideoReader(video)
        splits = self._check_splits(len(src))
        tables = self._tables(labels, splits, src.width, src.height)
        names: dict[str, str] = {}
        for split, (start, stop) in splits.items():
            seq = f"{self.name}-{split}"
            with atomic_dir(out_dir / seq) as tmp:
                write_mot(tmp / "gt" / "gt.txt", tables[split])
                if self.link_video:  # point at the source instead of copying a big file
                    info_video, info_start = str(video), start
                else:
                    with VideoWriter(tmp / "video.mp4", src.fps, (src.width, src.height)) as writer:
                        for frame in src.iter_range(start, stop):
                            writer.write(frame)
                    info_video, info_start = "video.mp4", 0
                SeqInfo(name=seq, frame_rate=src.fps, seq_length=stop - start, width=src.width,
                        height=src.height, video=info_video, video_start=info_start).write(tmp / "seqinfo.ini")
            names[split] = seq
            t = tables[split]
            log.info("%s: %d frames, %d boxes, ids %s", seq, stop - start, len(t), t.ids.tolist())
        manifest = DatasetManifest(
            name=self.name, species=self.species,
            num_animals=max((_max_per_frame(t) for t in tables.values()), default=0),
            train=[n for s, n in names.items() if s.startswith("train")],
            eval=[n for s, n in names.items() if not s.startswith("train")])
        manifest.write(out_dir)
        return manifest


def _looks_like_sequence(folder: Path) -> bool:
    return ((folder / "gt" / "gt.txt").is_file() or (folder / "seqinfo.ini").is_file()
            or (folder / "img1").is_dir() or any((folder / v).is_file() for v in VIDEO_NAMES))


class MotChallengeImporter:
    """Bring existing MOTChallenge-layout sequences into a data set without copying their frames.

    ``source`` is one sequence folder (a video or ``img1/``, ``gt/gt.txt``, optional ``seqinfo.ini``) or a
    folder of them. Each used sequence is validated (first and last frame decode and match the declared
    size, every gt row is valid), then ``<out_dir>/<seq>/`` is made of symlinks to the source's entries
    plus a fresh ``seqinfo.ini`` (derived from the frames where the source has none). The source is never
    written to.
    """

    def __init__(self, source: str, name: str | None = None, species: str = "animal",
                 num_animals: int | None = None, train: Iterable[str] = (),
                 eval: Iterable[str] | None = None) -> None:
        self.source = Path(source).expanduser()
        self.name = None if name is None else check_name(name, "data set name", key="name")
        self.species = species
        self.num_animals = None if num_animals is None else int(num_animals)
        self.train = [str(s) for s in train]
        self.eval = None if eval is None else [str(s) for s in eval]

    def _find(self) -> dict[str, Path]:
        if not self.source.is_dir():
            raise ConfigError("source", f"folder not found: {self.source}")
        if _looks_like_sequence(self.source):
            return {self.source.resolve().name: self.source.resolve()}
        found = {d.name: d.resolve() for d in sorted(self.source.iterdir())
                 if d.is_dir() and not d.name.startswith(".") and _looks_like_sequence(d)}
        if not found:
            raise ConfigError("source", f"{self.source} is neither a sequence folder (img1/ or a video, "
                              "gt/gt.txt) nor a folder of them")
        return found

    def _validate(self, root: Path) -> tuple[SeqInfo, MotTable]:
        seq = Sequence(root)
        frames = seq.frames()
        if isinstance(frames, ImageFolderReader):  # a frame cut short in the middle fails now, naming it
            frames.check_files()
        for idx in (0, seq.info.seq_length - 1):  # decoding the last frame catches truncated videos
            img = frames.read(idx)
            if img.shape[1] != seq.info.width or img.shape[0] != seq.info.height:
                where = root / "seqinfo.ini" if (root / "seqinfo.ini").is_file() else frames.path
                raise DataFormatError(where, f"frame {idx + 1} is {img.shape[1]}x{img.shape[0]} but the "
                                      f"sequence declares {seq.info.width}x{seq.info.height}")
        return seq.info, seq.gt()

    def build(self, out_dir: Path) -> DatasetManifest:
        """Import into ``out_dir``: a new or empty folder, or one an import made (``data.claim``), never a user's."""
        out_dir = Path(out_dir)
        found = self._find()
        for seq_name, root in found.items():
            if (out_dir / seq_name).resolve() == root:
                raise ConfigError("source", f"the output folder {out_dir} is the source itself")
        with claimed(out_dir, {"importer": type(self).__name__, "source": str(self.source.resolve())}, reuse=False):
            return self._build(out_dir, found)

    def _build(self, out_dir: Path, found: dict[str, Path]) -> DatasetManifest:
        for key, names in (("train", self.train), ("eval", self.eval or [])):
            unknown = [n for n in names if n not in found]
            if unknown:
                raise ConfigError(key, f"unknown sequence(s) {unknown}; {self.source} holds {sorted(found)}")
        eval_names = self.eval if self.eval is not None else [n for n in found if n not in self.train]
        used = list(dict.fromkeys(self.train + eval_names))
        counts = []
        for seq_name in used:
            root = found[seq_name]
            dest = out_dir / seq_name
            if dest.resolve() == root:
                raise ConfigError("source", f"the output folder {out_dir} is the source itself")
            info, gt = self._validate(root)
            counts.append(_max_per_frame(gt))
            if info.video and not Path(info.video).is_absolute():
                info = replace(info, video=str((root / info.video).resolve()))
            with atomic_dir(dest) as tmp:
                for entry in root.iterdir():
                    if entry.name != "seqinfo.ini":
                        os.symlink(entry.resolve(), tmp / entry.name)
                replace(info, name=seq_name).write(tmp / "seqinfo.ini")
            log.info("%s: %d frames, %d gt rows (linked from %s)", seq_name, info.seq_length, len(gt), root)
        manifest = DatasetManifest(
            name=self.name or self.source.resolve().name, species=self.species,
            num_animals=self.num_animals if self.num_animals is not None else max(counts, default=0),
            train=list(self.train), eval=list(eval_names))
        manifest.write(out_dir)
        return manifest
