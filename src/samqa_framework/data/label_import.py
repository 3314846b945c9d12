"""Your own video with labels made in another tool (COCO, Label Studio, DeepLabCut): an import as ``video_import``
does it (frames linked in place, splits by frame range), each split's frames of the label file becoming its ground
truth (``gt/gt.txt``, and ``gt/masks.jsonl`` where the format has masks).

The label file's frames are frames of the source (its ``frame_id``, DeepLabCut's image number, or, for a folder of
frames, the file a label names). Its sequences are matched to the source's videos by name; with one video and one
labelled sequence, they simply belong together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path
from typing import Any

from samqa_framework.data.formats.coco import read_coco
from samqa_framework.data.formats.dlc import read_dlc
from samqa_framework.data.formats.labels import FrameFiles, SequenceLabels
from samqa_framework.data.formats.labelstudio import read_labelstudio
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.data.video import ImageFolderReader
from samqa_framework.data.video_import import Source, VideoImporter, find_sources, safe_name, source_identity
from samqa_framework.utils.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

READERS: dict[str, Callable[..., list[SequenceLabels]]] = {"coco": read_coco, "labelstudio": read_labelstudio,
                                                           "dlc": read_dlc}


class LabelImporter(VideoImporter):
    """``source`` as :class:`VideoImporter` imports it, with ``labels`` (a file of ``format``: coco | labelstudio |
    dlc) as ground truth. ``num_animals`` null: the most animals labelled in one frame. ``margin_frac`` /
    ``margin_px``: how much a keypoint box (DeepLabCut) grows beyond the keypoints."""

    def __init__(self, source: str, labels: str, format: str, num_animals: int | None = None, name: str | None = None,
                 species: str = "animal", splits: Mapping[str, SequenceOf[int | None]] | None = None,
                 fps: float | None = None, margin_frac: float = 0.1, margin_px: float = 4.0) -> None:
        self.labels = Path(str(labels)).expanduser()
        if not self.labels.is_file():
            raise ConfigError("labels", f"label file not found: {self.labels}")
        if format not in READERS:
            raise ConfigError("format", f"one of {sorted(READERS)}, got {format!r}")
        self.format = format
        self.margin_frac, self.margin_px = float(margin_frac), float(margin_px)
        for key, value in (("margin_frac", self.margin_frac), ("margin_px", self.margin_px)):
            if value < 0:
                raise ConfigError(key, f"must be >= 0, got {value}")
        super().__init__(source, num_animals, name, species, splits, fps)
        self._labels: dict[str, SequenceLabels] = {}

    def _check_count(self, num_animals: int | None) -> int | None:
        return None if num_animals is None else super()._check_count(num_animals)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "labels": source_identity(self.labels), "format": self.format,
                "margin": [self.margin_frac, self.margin_px]}

    def _read(self, sources: list[Source]) -> list[SequenceLabels]:
        frames = sources[0].frames if len(sources) == 1 else None
        files = FrameFiles(p.name for p in frames._files) if isinstance(frames, ImageFolderReader) else None
        kwargs: dict[str, Any] = {"frame_files": files}
        if self.format == "dlc":
            kwargs |= {"margin_frac": self.margin_frac, "margin_px": self.margin_px}
        return READERS[self.format](self.labels, **kwargs)

    def _match(self, sources: list[Source], found: list[SequenceLabels]) -> dict[str, SequenceLabels]:
        """Source video stem -> its labels."""
        if len(sources) == 1 and len(found) == 1:
            return {sources[0].stem: found[0]}
        by_name = {safe_name(s.name): s for s in found}
        matched = {src.stem: by_name[src.stem] for src in sources if src.stem in by_name}
        if len(sources) == 1 and not matched and self.name in by_name:
            matched = {sources[0].stem: by_name[self.name]}
        if not matched:
            raise ConfigError("labels", f"{self.labels} labels the sequences {sorted(by_name)}, none named like the "
                              f"source's videos {[s.stem for s in sources]}")
        for name in sorted(set(by_name) - {safe_name(m.name) for m in matched.values()}):
            log.warning("%s: sequence %s matches no video of %s: not imported", self.labels, name, self.source)
        for src in sources:
            if src.stem not in matched:
                log.warning("%s: no labels in %s: imported unlabelled", src.path, self.labels)
        return matched

    def _import(self, out_dir: Path) -> DatasetManifest:
        sources = find_sources(self.source, self.fps)
        self._labels = self._match(sources, self._read(sources))
        return super()._import(out_dir)

    def ground_truth(self, src: Source, name: str, start: int, stop: int) -> SequenceLabels | None:
        labels = self._labels.get(src.stem)
        if labels is None:
            return None
        part, dropped = labels.window(start, stop, src.frames.width, src.frames.height)
        part.name = name
        for frame, masks in part.masks():
            size = next(iter(masks.values()))["size"]
            if list(size) != [src.frames.height, src.frames.width]:
                raise DataFormatError(self.labels, f"{labels.name} frame {frame + start}: masks are "
                                      f"{size[1]}x{size[0]}, the video {src.path} is "
                                      f"{src.frames.width}x{src.frames.height}")
        if dropped:
            log.warning("%s: %d box(es) outside the %dx%d frames left out", name, dropped, src.frames.width,
                        src.frames.height)
        log.info("%s: %d labelled frames, %d boxes", name, len(part.frames), len(part.table()))
        return part

    def count(self) -> int:
        if self.num_animals is not None:
            return self.num_animals
        return max((s.most_at_once() for s in self._labels.values()), default=0)
