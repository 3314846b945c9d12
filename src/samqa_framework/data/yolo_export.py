"""The ultralytics (YOLO) detection and segmentation data set formats, both ways: written by ``export_yolo`` and
``write_data_yaml``, read back (checked) by ``read_data_yaml`` and ``check_label_set``.

```
<out_dir>/images/<split>/<seq>_<frame:06d>.jpg    frame = MOT frame number (1-based)
<out_dir>/labels/<split>/<seq>_<frame:06d>.txt    "class cx cy w h" per box (detection) or "class x1 y1 x2 y2 ..."
                                                  per animal (segmentation: the mask's outline), normalised to [0, 1]
<out_dir>/data.yaml                               path, train, val, names
```

A frame without boxes gets an empty label file: ultralytics then uses it as a background image, which
teaches the detector that an empty arena is empty. ``check_label_set`` vets a split before training:
ultralytics itself drops bad label lines with a warning and trains on an empty label set without complaint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping
from collections.abc import Sequence as SequenceOf
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import yaml

from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable
from samqa_framework.data.video import FrameSource
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_dir, atomic_write_text

_WRITABLE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _classes(rows: MotTable, class_names: SequenceOf[str], where: str) -> np.ndarray:
    if len(class_names) == 1:  # single-class export: every row is that class, whatever its MOT class
        return np.zeros(len(rows), np.int64)
    cls = rows.cls - 1  # MOT class ids are 1-based
    bad = (cls < 0) | (cls >= len(class_names))
    if bad.any():
        raise ValueError(f"{where}: MOT class {rows.cls[bad][0]} has no name in class_names "
                         f"({len(class_names)} given, MOT classes are 1-based)")
    return cls


def _label_lines(rows: MotTable, width: int, height: int, class_names: SequenceOf[str], min_flag: float,
                 where: str, masks: Mapping[int, rle.RLE] | None = None) -> str:
    """YOLO label text for one frame's rows (boxes clipped to the image, low flags dropped). With ``masks`` (id ->
    RLE) a line is the outline of the animal's mask (its largest part; the clipped box for an animal without one)."""
    rows = rows.select(rows.conf >= min_flag)
    xyxy = rows.xyxy
    x0, x1 = np.clip(xyxy[:, 0], 0, width), np.clip(xyxy[:, 2], 0, width)
    y0, y1 = np.clip(xyxy[:, 1], 0, height), np.clip(xyxy[:, 3], 0, height)
    cls = _classes(rows, class_names, where)
    lines = []
    for c, tid, left, top, right, bottom in zip(cls, rows.track_id, x0, y0, x1, y1, strict=True):
        if right - left <= 0 or bottom - top <= 0:  # entirely outside the image
            continue
        if masks is None:
            lines.append(f"{c} {(left + right) / 2 / width:.6f} {(top + bottom) / 2 / height:.6f} "
                         f"{(right - left) / width:.6f} {(bottom - top) / height:.6f}\n")
            continue
        outlines = rle.to_polygons(masks[int(tid)]) if int(tid) in masks else []
        poly = outlines[0] if outlines else np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
        norm = np.clip(poly / [width, height], 0, 1)
        lines.append(f"{c} " + " ".join(f"{x:.6f} {y:.6f}" for x, y in norm) + "\n")
    return "".join(lines)


def export_yolo(items: Iterable[tuple[str, FrameSource, MotTable]], out_dir: Path, split: str = "train",
                every: int = 1, class_names: SequenceOf[str] = ("animal",), image_ext: str = ".jpg",
                min_flag: float = 0.5, frames: Mapping[str, Collection[int]] | None = None,
                segments: Mapping[str, Callable[[int], Mapping[int, rle.RLE]]] | None = None) -> Path:
    """Write every ``every``-th frame of each ``(name, frames, boxes)`` item into ``split``.

    Frames are streamed one at a time. Rows with ``conf`` (the gt flag) below ``min_flag`` are left out.
    ``frames``: per item name, the only (1-based) frames to write, e.g. a label set's labelled frames (a frame a
    method skipped is not an empty frame, so it must not become a background image); ``every`` still applies.
    ``segments``: per item name, the frame's masks (``frame -> {id: rle}``, e.g. ``rle.FrameMasks(path).of``): the
    labels are then YOLO segmentation outlines instead of boxes.
    The split's images and labels are built in temporary folders and renamed into place at the end
    (labels first, so a crash in between never leaves new images paired with stale labels); an earlier
    export of the same split is replaced. Returns ``<out_dir>/images/<split>``.
    """
    out_dir = Path(out_dir)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not split or "/" in split or split.startswith("."):
        raise ValueError(f"split {split!r} must be a plain folder name")
    if image_ext.lower() not in _WRITABLE_EXTS:
        raise ValueError(f"image_ext {image_ext!r} is not one of {_WRITABLE_EXTS}")
    if not class_names:
        raise ValueError("class_names is empty")
    seen: set[str] = set()
    with atomic_dir(out_dir / "images" / split) as img_tmp, atomic_dir(out_dir / "labels" / split) as lab_tmp:
        for name, source, table in items:
            if name in seen:  # file names would collide and silently overwrite each other
                raise ValueError(f"sequence name {name!r} appears twice in one split")
            seen.add(name)
            if table.num_frames > len(source):
                raise DataFormatError(source.path, f"{name}: boxes reach frame {table.num_frames} but the "
                                      f"frames stop at {len(source)}")
            keep = None if frames is None or name not in frames else set(frames[name])
            for k, img in enumerate(source.iter_range(0, None, every)):
                frame = k * every + 1
                if keep is not None and frame not in keep:
                    continue
                stem = f"{name}_{frame:06d}"
                height, width = img.shape[:2]
                masks = segments[name](frame) if segments is not None and name in segments else None
                text = _label_lines(table.rows_of(frame), width, height, class_names, min_flag,
                                    f"{name} frame {frame}", masks)
                if not cv2.imwrite(str(img_tmp / f"{stem}{image_ext}"), img):
                    raise OSError(f"cannot write {img_tmp / (stem + image_ext)}")
                (lab_tmp / f"{stem}.txt").write_text(text, encoding="utf-8")
    # ultralytics keys its label cache on file names and sizes; drop it so a re-export is always re-read
    (out_dir / "labels" / f"{split}.cache").unlink(missing_ok=True)
    return out_dir / "images" / split


def write_data_yaml(out_dir: Path, splits: Mapping[str, str], class_names: SequenceOf[str]) -> Path:
    """Write ``<out_dir>/data.yaml``: ``splits`` maps ultralytics' keys (train, val[, test]) to exported
    split folders, e.g. ``{"train": "train", "val": "val"}``."""
    out_dir = Path(out_dir)
    missing = [k for k in ("train", "val") if k not in splits]
    if missing:
        raise ValueError(f"splits needs the keys train and val (ultralytics requires both); missing {missing}")
    data: dict[str, object] = {"path": os.path.abspath(out_dir)}
    for key, split in splits.items():
        if not (out_dir / "images" / split).is_dir():
            raise DataFormatError(out_dir / "images" / split, "split not exported (call export_yolo first)")
        data[key] = f"images/{split}"
    data["names"] = {i: str(n) for i, n in enumerate(class_names)}
    path = out_dir / "data.yaml"
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path


class DataYaml(NamedTuple):
    """What a data.yaml says: the data set's root, the split folder of each ultralytics key (train, val[, test])
    and the class names, in class-id order."""

    root: Path
    splits: dict[str, str]
    names: list[str]


def read_data_yaml(path: Path) -> DataYaml:
    """Read a data.yaml as ``write_data_yaml`` writes it; a DataFormatError names the file (and the line of a
    YAML syntax error) when it is missing, not YAML, lacks train, val or names, or points a split elsewhere than
    an ``images/<split>`` folder."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "data.yaml not found (write it with write_data_yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataFormatError(path, f"not YAML ({getattr(exc, 'problem', None) or exc})",
                              None if mark is None else mark.line + 1) from None
    if not isinstance(data, dict):
        raise DataFormatError(path, f"expected a mapping (path, train, val, names), got {type(data).__name__}")
    missing = [k for k in ("train", "val", "names") if k not in data]
    if missing:
        raise DataFormatError(path, f"missing {', '.join(missing)}")
    root = Path(data.get("path") or path.parent)
    root = root if root.is_absolute() else path.parent / root
    names = data["names"]
    if isinstance(names, dict):
        if not all(isinstance(k, int) for k in names) or sorted(names) != list(range(len(names))):
            raise DataFormatError(path, f"names: class ids must be 0..{len(names) - 1}, got {sorted(names, key=str)}")
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise DataFormatError(path, "names is empty or not a list or id -> name mapping")
    splits = {}
    for key in ("train", "val", "test"):
        if key not in data:
            continue
        parts = Path(str(data[key])).parts
        if len(parts) != 2 or parts[0] != "images":
            raise DataFormatError(path, f"{key}: {data[key]!r} is not an images/<split> folder")
        splits[key] = parts[1]
    return DataYaml(root, splits, [str(n) for n in names])


def check_label_set(out_dir: Path, split: str, class_names: SequenceOf[str], require_boxes: bool = True) -> int:
    """Check every label file of ``<out_dir>/labels/<split>``; returns the number of boxes.

    Each line must be ``class cx cy w h`` (or a segmentation outline, ``class x1 y1 x2 y2 x3 y3 ...``) with a class id
    below ``len(class_names)`` and coordinates in [0, 1]
    (a DataFormatError names the file and line). With ``require_boxes``, a split without a single box is an empty
    label set (all background: the detector would learn to find nothing); the error names the label folder.
    """
    folder = Path(out_dir) / "labels" / split
    if not folder.is_dir():
        raise DataFormatError(folder, f"label folder of split {split!r} not found (call export_yolo first)")
    nc = len(class_names)
    boxes = files = 0
    for path in sorted(folder.glob("*.txt")):
        files += 1
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                cls, *xywh = (float(v) for v in fields)
            except ValueError:
                raise DataFormatError(path, f"not numbers: {line.strip()!r}", line=number) from None
            if len(xywh) != 4 and (len(xywh) < 6 or len(xywh) % 2):
                raise DataFormatError(path, f"expected 'class cx cy w h' or an outline 'class x1 y1 x2 y2 x3 y3 ...', "
                                      f"got {len(fields)} values", line=number)
            if not cls.is_integer() or not 0 <= cls < nc:
                raise DataFormatError(path, f"class id {fields[0]} is not one of the data set's {nc} class(es) "
                                      f"0..{nc - 1} ({', '.join(map(str, class_names))})", line=number)
            if not all(0 <= v <= 1 for v in xywh):
                raise DataFormatError(path, f"box {' '.join(fields[1:])} is not normalised to [0, 1]", line=number)
            boxes += 1
    if require_boxes and not boxes:
        raise DataFormatError(folder, f"empty label set: none of the {files} label files of split {split!r} holds a "
                              "box, so there is nothing to train a detector on")
    return boxes
