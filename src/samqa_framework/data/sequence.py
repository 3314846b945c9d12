"""A sequence in MOTChallenge layout, and a data set (train + eval sequences) described by a manifest.

```
<seq>/seqinfo.ini      [Sequence] name, frameRate, seqLength, imWidth, imHeight, imDir, imExt
                       (+ ours: video = a video file or a folder of frames, its name or path; videoStart = first
                       frame used, 0-based)
<seq>/video.mp4        or <seq>/img1/000001.jpg ...
<seq>/gt/gt.txt        ground truth, 9 columns (frame, id, box, flag, class, visibility); absent in an unlabelled
                       import (your own video): only what needs ground truth (evaluation, the label-quality
                       report, the oracle prompts) refuses such a sequence, by name
<seq>/gt/masks.jsonl   optional instance masks, COCO RLE (see ``rle.py``)
<seq>/build.json       synthetic sequences only: the builder's record, ``config_hash`` + the config rendered
<dataset>/dataset.yaml name, species, num_animals, train: [seq], eval: [seq]
```

Sequence names (``seqinfo.ini``'s ``name``, the manifest's lists) become folder and file names of every later
stage: a name that is a path (``../x``) is refused where it is read (``utils.names``), naming the file and line.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from samqa_framework.data.mot import MotTable, read_mot
from samqa_framework.data.video import FrameSource, ImageFolderReader, VideoReader
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json, atomic_write_text
from samqa_framework.utils.names import check_name

VIDEO_NAMES = ("video.mp4", "video.avi", "video.mov", "video.mkv")
BUILD_RECORD = "build.json"


def write_build_record(folder: str | os.PathLike[str], record: Mapping[str, object]) -> None:
    """``<folder>/build.json``: what a synthetic sequence was rendered from (``record`` holds ``config_hash``)."""
    atomic_write_json(Path(folder) / BUILD_RECORD, dict(record))


def read_build_hash(folder: str | os.PathLike[str]) -> str | None:
    """The config hash a synthetic sequence was rendered with; None without a readable build record (an imported
    sequence, or a render that never finished): the caller then treats the folder as not built by this config."""
    path = Path(folder) / BUILD_RECORD
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["config_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class SeqInfo:
    name: str
    frame_rate: float
    seq_length: int
    width: int
    height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"
    video: str | None = None
    video_start: int = 0

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SeqInfo:
        path = Path(path)
        parser = configparser.ConfigParser(interpolation=None)  # a '%' in a video path is not a template
        try:
            parser.read(path, encoding="utf-8")
            sec = parser["Sequence"]
            info = cls(name=sec.get("name", path.parent.name), frame_rate=float(sec.get("frameRate", 30)),
                       seq_length=int(sec["seqLength"]), width=int(sec["imWidth"]), height=int(sec["imHeight"]),
                       im_dir=sec.get("imDir", "img1"), im_ext=sec.get("imExt", ".jpg"),
                       video=sec.get("video"), video_start=int(sec.get("videoStart", 0)))
        except (configparser.Error, KeyError, ValueError) as exc:
            raise DataFormatError(path, f"bad seqinfo.ini ({exc.__class__.__name__}: {exc})") from None
        check_name(info.name, "sequence name", path=path, line=_key_line(path, "name"))
        return info

    def write(self, path: str | os.PathLike[str]) -> None:
        lines = ["[Sequence]", f"name={self.name}", f"imDir={self.im_dir}", f"frameRate={self.frame_rate:g}",
                 f"seqLength={self.seq_length}", f"imWidth={self.width}", f"imHeight={self.height}",
                 f"imExt={self.im_ext}"]
        if self.video:
            lines += [f"video={self.video}", f"videoStart={self.video_start}"]
        atomic_write_text(path, "\n".join(lines) + "\n")


def _key_line(path: Path, key: str) -> int | None:
    """The line of ``key = ...`` in an ini file (configparser does not keep it), for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((n for n, line in enumerate(lines, 1) if line.split("=", 1)[0].strip().lower() == key), None)


class Sequence:
    """One sequence folder. Frames and labels are opened lazily, on request."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataFormatError(self.root, "sequence folder not found")
        ini = self.root / "seqinfo.ini"
        if ini.is_file():
            self.info = SeqInfo.read(ini)
        else:  # a bare MOTChallenge folder: derive the info from its frames
            check_name(self.root.name, "sequence folder name", path=self.root)
            src = self._open_frames(None)
            self.info = SeqInfo(name=self.root.name, frame_rate=src.fps, seq_length=len(src), width=src.width,
                                height=src.height, video=src.path.name if isinstance(src, VideoReader) else None)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def gt_path(self) -> Path:
        return self.root / "gt" / "gt.txt"

    @property
    def masks_path(self) -> Path:
        return self.root / "gt" / "masks.jsonl"

    def _open_frames(self, info: SeqInfo | None) -> FrameSource:
        if info is not None and info.video:
            video = Path(info.video)
            video = video if video.is_absolute() else self.root / video
            if video.is_dir():  # a folder of frames (an import of your own frames, linked in place)
                return ImageFolderReader(video, fps=info.frame_rate, start=info.video_start, length=info.seq_length)
            return VideoReader(video, start=info.video_start, length=info.seq_length)
        for name in VIDEO_NAMES:
            if (self.root / name).is_file():
                return VideoReader(self.root / name, length=info.seq_length if info else None)
        img_dir = self.root / (info.im_dir if info else "img1")
        if img_dir.is_dir():
            return ImageFolderReader(img_dir, fps=info.frame_rate if info else 30.0,
                                     length=info.seq_length if info else None)
        raise DataFormatError(self.root, f"no frames: expected one of {', '.join(VIDEO_NAMES)} or an img1/ folder")

    def frames_location(self) -> tuple[Path, int]:
        """Where the frames are: the video file or frame folder (absolute) and the first frame used (0-based), what a
        sequence made elsewhere links to instead of copying the frames."""
        src = self._open_frames(self.info)
        start = src.start if isinstance(src, VideoReader) else self.info.video_start if self.info.video else 0
        return src.path.resolve(), int(start)

    def frames(self) -> FrameSource:
        """A lazy reader of this sequence's frames (checked against seqinfo's length)."""
        src = self._open_frames(self.info)
        if len(src) < self.info.seq_length:
            raise DataFormatError(src.path, f"has {len(src)} frames but seqinfo.ini says seqLength="
                                  f"{self.info.seq_length}")
        return src

    def gt(self) -> MotTable:
        """Ground truth, validated against the sequence's length and image size."""
        if not self.gt_path.is_file():
            raise DataFormatError(self.gt_path, f"sequence {self.name} has no ground truth (gt/gt.txt not found)")
        return read_mot(self.gt_path, num_frames=self.info.seq_length,
                        image_size=(self.info.width, self.info.height))

    def has_masks(self) -> bool:
        return self.masks_path.is_file()

    def has_gt(self) -> bool:
        """False for an unlabelled sequence (an import of your own video)."""
        return self.gt_path.is_file()


@dataclass
class DatasetManifest:
    """What a data set folder holds; written as ``dataset.yaml`` by every builder."""

    name: str
    species: str
    num_animals: int
    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)

    FILE = "dataset.yaml"

    def write(self, root: str | os.PathLike[str]) -> Path:
        path = Path(root) / self.FILE
        atomic_write_text(path, yaml.safe_dump(asdict(self), sort_keys=False))
        return path

    @classmethod
    def read(cls, root: str | os.PathLike[str]) -> DatasetManifest:
        path = Path(root) / cls.FILE
        if not path.is_file():
            raise DataFormatError(path, "data set manifest not found (build the data set with samqa-generate)")
        try:
            text = path.read_text(encoding="utf-8")
            manifest = cls(**yaml.safe_load(text))
            lines = _list_lines(text)
        except (TypeError, yaml.YAMLError) as exc:
            raise DataFormatError(path, f"bad manifest ({exc})") from None
        for split in ("train", "eval"):
            names = getattr(manifest, split)
            if not isinstance(names, list):
                raise DataFormatError(path, f"{split}: expected a list of sequence names, got {names!r}")
            for i, name in enumerate(names):
                check_name(name, f"{split}: sequence name", path=path, line=lines.get((split, i)))
        return manifest

    def sequences(self, root: str | os.PathLike[str], split: str) -> list[Sequence]:
        return [Sequence(Path(root) / s) for s in getattr(self, split)]


def _list_lines(text: str) -> dict[tuple[str, int], int]:
    """(key, index) -> line of each item of the top-level lists of a yaml text, for error messages."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        return {}
    return {(key.value, i): item.start_mark.line + 1 for key, value in root.value
            if isinstance(value, yaml.SequenceNode) for i, item in enumerate(value.value)}
