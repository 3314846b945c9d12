"""Write a synthetic data set (one training and N evaluation sequences) in our MOTChallenge layout.

Frames, ``gt/gt.txt`` and ``gt/masks.jsonl`` are streamed as they are rendered, so memory does not grow
with the sequence's length. Each sequence folder is built under a temporary name and renamed when
complete; a finished sequence whose recorded config matches is reused, so an interrupted build resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np
from tqdm import tqdm

from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable, format_mot_rows
from samqa_framework.data.sequence import DatasetManifest, SeqInfo, read_build_hash, write_build_record
from samqa_framework.data.synthetic.renderer import SceneRenderer
from samqa_framework.data.synthetic.scene import SceneSpec
from samqa_framework.data.video import VideoWriter
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.io import atomic_dir
from samqa_framework.utils.names import check_name

log = logging.getLogger(__name__)



class ImageFolderWriter:
    """Numbered JPEGs in ``img1/`` (MOTChallenge's own layout), the same interface as VideoWriter."""

    def __init__(self, folder: Path, ext: str = ".jpg", quality: int = 95) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ext, self.quality, self.count = ext, quality, 0

    def write(self, frame: np.ndarray) -> None:
        self.count += 1
        cv2.imwrite(str(self.folder / f"{self.count:06d}{self.ext}"), frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class SyntheticDatasetBuilder:
    """Render ``<name>-train``, ``<name>-eval1``, ``<name>-eval2``... into ``out_dir``."""

    def __init__(self, name: str, species: str, num_animals: int, seed: int, size: str,
                 sizes: Mapping[str, Mapping[str, Any]], scene: Mapping[str, Any], video_format: str = "mp4",
                 min_visibility: float = 0.25) -> None:
        sizes = to_plain(sizes)
        if size not in sizes:
            raise ConfigError("size", f"unknown size {size!r}; choose one of {sorted(sizes)}")
        if video_format not in ("mp4", "img1"):
            raise ConfigError("video_format", f"must be 'mp4' or 'img1', got {video_format!r}")
        if num_animals < 1:
            raise ConfigError("num_animals", f"must be at least 1, got {num_animals}")
        self.name = check_name(name, "data set name", key="name")  # its sequences' folder names start with it
        self.species, self.num_animals, self.seed = species, int(num_animals), int(seed)
        self.size = dict(sizes[size])
        for key in ("width", "height", "fps", "train_frames", "eval_frames"):
            if key not in self.size:
                raise ConfigError(f"sizes.{size}.{key}", "missing")
        self.scene_cfg = to_plain(scene)
        try:
            self.scene = SceneSpec.from_dict(self.scene_cfg)
        except ValueError as exc:
            raise ConfigError("scene", str(exc)) from None
        self.video_format = video_format
        self.min_visibility = float(min_visibility)

    def plan(self) -> list[tuple[str, str, int]]:
        """(sequence name, split, frames) for every sequence."""
        plan = [(f"{self.name}-train", "train", int(self.size["train_frames"]))]
        frames: Sequence[int] = self.size["eval_frames"]
        plan += [(f"{self.name}-eval{i + 1}", "eval", int(n)) for i, n in enumerate(frames)]
        return plan

    def _record(self, seq: str, index: int, frames: int) -> dict[str, Any]:
        spec = {"seq": seq, "index": index, "frames": frames, "seed": self.seed, "num_animals": self.num_animals,
                "size": self.size, "scene": self.scene_cfg, "video_format": self.video_format,
                "min_visibility": self.min_visibility, "version": 1}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return {"config_hash": digest, **spec}

    def build(self, out_dir: str | os.PathLike[str]) -> DatasetManifest:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest = DatasetManifest(name=self.name, species=self.species, num_animals=self.num_animals)
        for index, (seq, split, frames) in enumerate(self.plan()):
            getattr(manifest, split).append(seq)
            record = self._record(seq, index, frames)
            built = read_build_hash(out_dir / seq)
            if built == record["config_hash"]:
                log.info("%s: already built with this config, reused", seq)
                continue
            if built is None and (out_dir / seq).exists():  # a render is renamed into place with its record
                raise DataFormatError(out_dir / seq, "exists but was not rendered here (no build record): a data set "
                                      "is never built over a folder of yours (choose another out_dir, or data.name "
                                      "for paths.dataset_dir)")
            with atomic_dir(out_dir / seq) as tmp:
                self._render_sequence(tmp, seq, index, frames)
                write_build_record(tmp, record)
        manifest.write(out_dir)
        return manifest

    def _render_sequence(self, folder: Path, seq: str, index: int, frames: int) -> None:
        w, h, fps = int(self.size["width"]), int(self.size["height"]), float(self.size["fps"])
        renderer = SceneRenderer(self.scene, self.num_animals, w, h, fps, seed=self.seed * 1000 + index)
        sink = (VideoWriter(folder / "video.mp4", fps, (w, h)) if self.video_format == "mp4"
                else ImageFolderWriter(folder / "img1"))
        (folder / "gt").mkdir(parents=True, exist_ok=True)
        with sink, rle.MaskWriter(folder / "gt" / "masks.jsonl") as masks, \
                open(folder / "gt" / "gt.txt", "w", encoding="utf-8") as gt:
            stream = renderer.render(frames)
            for t, fr in enumerate(tqdm(stream, total=frames, desc=f"render {seq}", unit="frame", leave=False,
                                        dynamic_ncols=True, disable=None), start=1):
                sink.write(fr.image)
                encoded = [rle.encode(m) for m in fr.masks]
                boxes = np.array([rle.bbox(r) for r in encoded]).reshape(-1, 4)
                flags = (np.asarray(fr.visibility) >= self.min_visibility).astype(np.float64)
                rows = MotTable(np.full(len(fr.ids), t), fr.ids, boxes, flags, np.ones(len(fr.ids)), fr.visibility)
                gt.write(format_mot_rows(rows, columns=9))
                masks.write(t, list(zip(fr.ids.tolist(), encoded, strict=True)))
        SeqInfo(name=seq, frame_rate=fps, seq_length=frames, width=w, height=h,
                video="video.mp4" if self.video_format == "mp4" else None).write(folder / "seqinfo.ini")
