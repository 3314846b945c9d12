"""The export task (``samqa-export``, ``api.export``): a samqa-annotate run's labels in another tool's format.

``labels`` is the run's labels folder (one subfolder per sequence, each a finished label set that names its sequence
in ``sequence.json``); ``out_dir`` gets, by ``format``:

- ``coco``: ``annotations.json`` (COCO instances, RLE masks, ``track_id``) + ``images/<seq>/<frame:06d>.jpg``;
- ``yolo_seg`` / ``yolo``: an ultralytics data set (``images/train``, ``labels/train``, ``data.yaml``) of mask
  outlines / boxes;
- ``labelstudio``: ``tasks.json`` (the labels as predictions to review), ``label_config.xml`` and the images;
- ``mot``: one MOTChallenge folder per sequence (``gt/gt.txt``, ``gt/masks.jsonl``, ``seqinfo.ini`` linking the video).

Only labelled frames are exported (a frame the method skipped is not an empty one). An export never replaces a folder:
``out_dir`` must be new or empty; it is built aside and moved into place when complete.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
from omegaconf import DictConfig

from samqa_framework.annotate.label_set import MASKS, read_label_set, read_sequence_record
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data import rle
from samqa_framework.data.formats.coco import write_coco
from samqa_framework.data.formats.labels import SequenceLabels
from samqa_framework.data.formats.labelstudio import label_config, write_labelstudio
from samqa_framework.data.formats.motchallenge import write_motchallenge
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.data.yolo_export import export_yolo, write_data_yaml
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.io import atomic_dir, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Exported:
    labels: SequenceLabels
    sequence: Sequence


def label_set_dirs(root: Path, wanted: list[str] | None) -> list[Path]:
    """The label sets of a run's labels folder (or the one label set ``root`` is), in name order."""
    if not root.is_dir():
        raise ConfigError("labels", f"folder not found: {root}")
    found = ([root] if (root / LabelStore.FILE).is_file()
             else sorted(d for d in root.iterdir() if (d / LabelStore.FILE).is_file()))
    if not found:
        raise ConfigError("labels", f"{root} holds no label set (<sequence>/{LabelStore.FILE}, what samqa-annotate "
                          "writes in its out_dir)")
    if wanted:
        unknown = sorted(set(wanted) - {d.name for d in found})
        if unknown:
            raise ConfigError("sequences", f"{unknown} not in {root} ({[d.name for d in found]})")
        found = [d for d in found if d.name in wanted]
    return found


def load(labels_dir: Path) -> Exported:
    """A finished label set with its masks, checked as training checks it."""
    sequence, frames = read_sequence_record(labels_dir)
    label_set = read_label_set(labels_dir, sequence, max_frames=frames)
    masks_path = labels_dir / MASKS
    masks = rle.iter_masks(masks_path) if masks_path.is_file() else ()
    info = sequence.info
    return Exported(SequenceLabels.from_table(sequence.name, info.width, info.height, label_set.boxes,
                                              label_set.labelled, masks), sequence)


def image_name(sequence: str, frame: int) -> str:
    return f"images/{sequence}/{frame:06d}.jpg"


def write_images(out_dir: Path, sets: list[Exported]) -> None:
    """The labelled frames as JPEGs (:func:`image_name`), decoded in order, one at a time."""
    for item in sets:
        wanted = set(item.labels.frames)
        folder = out_dir / "images" / item.labels.name
        folder.mkdir(parents=True, exist_ok=True)
        for index, img in enumerate(item.sequence.frames().iter_range(0, max(wanted, default=0))):
            if index + 1 in wanted and not cv2.imwrite(str(out_dir / image_name(item.labels.name, index + 1)), img):
                raise OSError(f"cannot write {out_dir / image_name(item.labels.name, index + 1)}")


def _coco(out: Path, sets: list[Exported], cfg: DictConfig, category: str) -> None:
    if cfg.images:
        write_images(out, sets)
    write_coco(out / "annotations.json", [s.labels for s in sets], image_name, category)


def _labelstudio(out: Path, sets: list[Exported], cfg: DictConfig, category: str) -> None:
    if cfg.images:
        write_images(out, sets)
    write_labelstudio(out / "tasks.json", [s.labels for s in sets],
                      lambda seq, frame: f"{cfg.url_prefix}{image_name(seq, frame)}", category)
    most = max((a.track_id for s in sets for anns in s.labels.frames.values() for a in anns), default=1)
    atomic_write_text(out / "label_config.xml", label_config([f"{category} {i}" for i in range(1, most + 1)]))


def _yolo(out: Path, sets: list[Exported], category: str, segment: bool) -> None:
    def masks_of(labels: SequenceLabels) -> Callable[[int], dict[int, rle.RLE]]:
        return lambda frame: {a.track_id: a.rle for a in labels.frames.get(frame, []) if a.rle is not None}

    export_yolo(((s.labels.name, s.sequence.frames(), s.labels.table()) for s in sets), out, "train",
                class_names=[category], min_flag=-math.inf,  # conf is the method's score, not a flag
                frames={s.labels.name: list(s.labels.frames) for s in sets},
                segments={s.labels.name: masks_of(s.labels) for s in sets} if segment else None)
    # ultralytics needs a val split: it points at the same images (split them as the project needs)
    write_data_yaml(out, {"train": "train", "val": "train"}, [category])


def _mot(out: Path, sets: list[Exported], cfg: DictConfig, category: str) -> None:
    for s in sets:
        write_motchallenge(out / s.labels.name, s.labels, s.sequence)


WRITERS: dict[str, Callable[[Path, list[Exported], DictConfig, str], None]] = {
    "coco": _coco, "labelstudio": _labelstudio, "mot": _mot,
    "yolo_seg": lambda out, sets, cfg, category: _yolo(out, sets, category, segment=True),
    "yolo": lambda out, sets, cfg, category: _yolo(out, sets, category, segment=False)}


def class_name(cfg: DictConfig, sets: list[Exported]) -> str:
    """``class_name``, else the species of the data set the first sequence belongs to, else ``animal``."""
    if cfg.get("class_name"):
        return str(cfg.class_name)
    try:
        return DatasetManifest.read(sets[0].sequence.root.parent).species
    except DataFormatError:
        return "animal"


def export(cfg: DictConfig) -> Path:
    """Write the label sets of ``cfg.labels`` in ``cfg.format`` into ``cfg.out_dir``; returns that folder."""
    if cfg.format not in WRITERS:
        raise ConfigError("format", f"one of {', '.join(WRITERS)}, got {cfg.format!r}")
    dirs = label_set_dirs(Path(cfg.labels), list(cfg.sequences) if cfg.get("sequences") else None)
    out_dir = Path(cfg.out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataFormatError(out_dir, "exists and is not empty: an export never replaces a folder (choose a new or "
                              "empty out_dir)")
    sets = [load(d) for d in dirs]
    category = class_name(cfg, sets)
    with atomic_dir(out_dir) as tmp:
        WRITERS[cfg.format](tmp, sets, cfg, category)
    frames = sum(len(s.labels.frames) for s in sets)
    print(f"{cfg.format}: {len(sets)} sequence(s), {frames} labelled frames, "
          f"{sum(len(s.labels.table()) for s in sets)} boxes -> {out_dir}")
    return out_dir
