"""Your own videos as a data set: a video file OpenCV reads (mp4, avi, mov...), a folder of videos, or a folder of
frames (jpg, png...), cut into splits by frame range, without ground truth unless a label file is given
(``data/label_import.py``).

Nothing is copied or decoded beyond a check: each sequence's ``seqinfo.ini`` points at the source (``video`` = the
file or the frame folder, ``videoStart`` = the split's first frame), so an import costs the same for a minute and for
a day of video, and memory does not grow with its length. The folder is claimed with ``import.json`` (what was
imported, from which files): a second import of the same config and files reuses it, a folder holding anything
else is never written into.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samqa_framework.data.claim import claimed
from samqa_framework.data.formats.labels import SequenceLabels
from samqa_framework.data.formats.motchallenge import write_ground_truth
from samqa_framework.data.importers import check_splits
from samqa_framework.data.sequence import DatasetManifest, SeqInfo
from samqa_framework.data.video import IMAGE_EXTS, FrameSource, ImageFolderReader, VideoReader
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.io import atomic_dir

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm")


@dataclass
class Source:
    """One video (file or frame folder) of the source; ``stem`` names its sequences."""

    stem: str
    path: Path
    frames: FrameSource


def safe_name(text: str) -> str:
    """A folder name for a sequence: anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "video"


def find_sources(source: Path, fps: float | None) -> list[Source]:
    """The videos of ``source``: the file itself, every video of a folder, or a folder of frames as one video.
    A file OpenCV cannot decode is a DataFormatError naming it."""
    if source.is_file():
        return [Source(safe_name(source.stem), source, VideoReader(source))]
    if not source.is_dir():
        raise ConfigError("source", f"not found: {source}")
    entries = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    videos = [p for p in entries if p.suffix.lower() in VIDEO_EXTS]
    images = [p for p in entries if p.suffix.lower() in IMAGE_EXTS]
    if videos and images:
        raise ConfigError("source", f"{source} holds both videos ({videos[0].name}, ...) and frames "
                          f"({images[0].name}, ...): point it at one video, a folder of videos or a folder of frames")
    if images:
        return [Source(safe_name(source.resolve().name), source, ImageFolderReader(source, fps=fps or 30.0))]
    if not videos:
        raise ConfigError("source", f"{source} holds no video ({', '.join(VIDEO_EXTS)}) and no frames "
                          f"({', '.join(IMAGE_EXTS)})")
    stems = [safe_name(p.stem) for p in videos]
    # two videos of one name (a.mp4, a.avi) keep their extension in the sequence name
    names = [f"{s}_{p.suffix.lstrip('.').lower()}" if stems.count(s) > 1 else s for s, p in zip(stems, videos,
                                                                                                  strict=True)]
    return [Source(n, p, VideoReader(p)) for n, p in zip(names, videos, strict=True)]


def source_identity(path: Path) -> list[Any]:
    """What tells a changed source from the same one: the path, and the size and modification time of the file or of
    every file of the folder (as one digest: a folder may hold a million frames)."""
    path = path.resolve()
    if path.is_file():
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    digest = hashlib.sha256()
    count = 0
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.is_file():
            st = entry.stat()
            digest.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
    return [str(path), count, digest.hexdigest()[:16]]


def write_sequence(dest: Path, name: str, src: Source, start: int, stop: int,
                   labels: SequenceLabels | None = None) -> None:
    """``dest`` = a sequence of frames ``[start, stop)`` of ``src``, linked in place (``seqinfo.ini``), with
    ``labels`` (numbered from the split's first frame) as its ground truth."""
    with atomic_dir(dest) as tmp:
        SeqInfo(name=name, frame_rate=src.frames.fps, seq_length=stop - start, width=src.frames.width,
                height=src.frames.height, video=str(src.path.resolve()), video_start=start).write(tmp / "seqinfo.ini")
        if labels is not None:
            write_ground_truth(tmp, labels)


def check_decodes(src: Source, ranges: Mapping[str, tuple[int, int]]) -> None:
    """Decode the first and last frame of every range: a truncated video or a broken frame fails now, naming the
    file, not in the middle of a labelling run; a folder of frames has every file's ends checked
    (``ImageFolderReader.check_files``)."""
    if isinstance(src.frames, ImageFolderReader):
        src.frames.check_files()
    for start, stop in ranges.values():
        for index in (start, stop - 1):
            img = src.frames.read(index)
            if img.shape[1] != src.frames.width or img.shape[0] != src.frames.height:
                raise DataFormatError(src.path, f"frame {index + 1} is {img.shape[1]}x{img.shape[0]}, the first is "
                                      f"{src.frames.width}x{src.frames.height}: all frames must have one size")


class VideoImporter:
    """Import ``source`` (a video, a folder of videos or a folder of frames) as an unlabelled data set.

    ``splits``: frame ranges ``[start, stop)`` per split (``stop`` null: to the end; a null range: no such split), the
    same for every video; a split whose name starts with ``train`` is for training (and labelling), the others
    evaluate. Sequences are named ``<name>-<split>`` for one video, ``<video>-<split>`` for a folder of videos.
    ``num_animals`` is required: the annotators check every frame against it and nothing else tells it.
    """

    def __init__(self, source: str, num_animals: int | None = None, name: str | None = None, species: str = "animal",
                 splits: Mapping[str, SequenceOf[int | None]] | None = None, fps: float | None = None) -> None:
        self.source = Path(str(source)).expanduser()
        if not self.source.exists():
            raise ConfigError("source", f"not found: {self.source} (a video file, a folder of videos or of frames)")
        self.name = safe_name(name) if name else safe_name(self.source.resolve().stem)
        self.species = species
        self.splits = ({"train": [0, None]} if splits is None
                       else {str(k): list(v) for k, v in splits.items() if v is not None})
        if not self.splits:
            raise ConfigError("splits", "no splits given (leave it unset for every frame in train)")
        self.fps = None if fps is None else float(fps)
        if self.fps is not None and self.fps <= 0:
            raise ConfigError("fps", f"must be > 0, got {self.fps}")
        self.num_animals = self._check_count(num_animals)

    def _check_count(self, num_animals: int | None) -> int | None:
        if num_animals is None:
            raise ConfigError("num_animals", "an unlabelled import needs the number of animals in the video (the "
                              "annotators check each frame against it): set it, e.g. data.num_animals=2")
        if int(num_animals) != num_animals or num_animals < 1:
            raise ConfigError("num_animals", f"must be a whole number >= 1, got {num_animals}")
        return int(num_animals)

    def record(self) -> dict[str, Any]:
        """What the import is made of (``import.json``): a different one redoes the import."""
        return {"importer": type(self).__name__, "name": self.name, "species": self.species,
                "num_animals": self.num_animals, "splits": self.splits, "fps": self.fps,
                "source": source_identity(self.source)}

    def sequence_name(self, sources: list[Source], split: str, src: Source) -> str:
        return f"{self.name if len(sources) == 1 else src.stem}-{split}"

    def build(self, out_dir: Path) -> DatasetManifest:
        out_dir = Path(out_dir)
        with claimed(out_dir, self.record()) as done:
            if done:
                log.info("%s: already imported from %s", out_dir, self.source)
                return DatasetManifest.read(out_dir)
            manifest = self._import(out_dir)
        return manifest

    def _import(self, out_dir: Path) -> DatasetManifest:
        sources = find_sources(self.source, self.fps)
        train, evaluate = [], []
        for src in sources:
            ranges = check_splits(self.splits, len(src.frames), str(src.path))
            check_decodes(src, ranges)
            for split, (start, stop) in ranges.items():
                seq = self.sequence_name(sources, split, src)
                if (out_dir / seq).resolve() == src.path.resolve():
                    raise ConfigError("source", f"the output folder {out_dir} is the source itself")
                write_sequence(out_dir / seq, seq, src, start, stop, self.ground_truth(src, seq, start, stop))
                (train if split.startswith("train") else evaluate).append(seq)
                log.info("%s: frames %d-%d of %s", seq, start + 1, stop, src.path)
        manifest = DatasetManifest(name=self.name, species=self.species, num_animals=self.count(), train=train,
                                   eval=evaluate)
        manifest.write(out_dir)
        return manifest

    def ground_truth(self, src: Source, name: str, start: int, stop: int) -> SequenceLabels | None:
        """The labels of sequence ``name`` (frames ``[start, stop)`` of ``src``): none, unless a label file was given
        (``label_import.LabelImporter``)."""
        return None

    def count(self) -> int:
        return int(self.num_animals or 0)
