"""Label Studio JSON (a list of tasks, as its "JSON" export writes them), both ways: :func:`write_labelstudio` puts
the labels in as predictions to review (a rectangle and the mask's polygon outlines for each animal),
:func:`read_labelstudio` reads a project's export back (a person's annotation where there is one, else the
prediction).

An animal's identity is the number at the end of its regions' label (``animal 3``): in Label Studio a reviewer fixes a
swapped identity by relabelling the region. Coordinates are percent of the image, as Label Studio stores them. Each
task carries ``sequence`` and 0-based ``frame_id`` beside the ``image`` URL. :func:`label_config` is the project's
labelling interface for these tasks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from samqa_framework.data import rle
from samqa_framework.data.formats.labels import Annotation, FrameFiles, SequenceLabels, trailing_id
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json

log = logging.getLogger(__name__)

BOX, OUTLINE, IMAGE = "box", "outline", "image"  # the control and object tag names of label_config()


def label_config(labels: Sequence[str]) -> str:
    """The labelling interface (Label Studio XML) whose tags the tasks' regions name: one label per animal."""
    items = "".join(f"    <Label value={quoteattr(v)}/>\n" for v in labels)
    return (f'<View>\n  <Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>\n'
            f'  <RectangleLabels name="{BOX}" toName="{IMAGE}">\n{items}  </RectangleLabels>\n'
            f'  <PolygonLabels name="{OUTLINE}" toName="{IMAGE}" strokeWidth="2" opacity="0.3">\n{items}'
            "  </PolygonLabels>\n</View>\n")


def _regions(frame: int, a: Annotation, label: str, width: int, height: int) -> list[dict[str, Any]]:
    name = f"{label} {a.track_id}"
    common = {"to_name": IMAGE, "original_width": width, "original_height": height, "image_rotation": 0,
              "score": float(a.score)}
    x, y, w, h = (float(v) for v in a.box)
    out = [{"id": f"f{frame}-{a.track_id}-box", "from_name": BOX, "type": "rectanglelabels", **common,
            "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                      "height": 100 * h / height, "rotation": 0, "rectanglelabels": [name]}}]
    for k, poly in enumerate(rle.to_polygons(a.rle) if a.rle is not None else []):
        points = [[100 * px / width, 100 * py / height] for px, py in poly]
        out.append({"id": f"f{frame}-{a.track_id}-outline{k}", "from_name": OUTLINE, "type": "polygonlabels",
                    **common, "value": {"points": points, "closed": True, "polygonlabels": [name]}})
    return out


def write_labelstudio(path: str | os.PathLike[str], sequences: Sequence[SequenceLabels],
                      image_url: Callable[[str, int], str], label: str = "animal") -> Path:
    """One task per labelled frame, its labels as a prediction; ``image_url(sequence, frame)`` is each task's image."""
    tasks = []
    for seq in sequences:
        for frame, anns in seq.frames.items():
            result = [r for a in anns for r in _regions(frame, a, label, seq.width, seq.height)]
            score = float(np.mean([a.score for a in anns])) if anns else 1.0
            tasks.append({"data": {IMAGE: image_url(seq.name, frame), "sequence": seq.name, "frame_id": frame - 1},
                          "predictions": [{"model_version": "samqa", "score": score, "result": result}]})
    atomic_write_json(path, tasks, indent=None)
    return Path(path)


def _chosen_result(task: dict[str, Any]) -> list[dict[str, Any]]:
    """A person's latest annotation that was not cancelled, else the first prediction."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if done:
        return list(done[-1].get("result") or [])
    predictions = task.get("predictions") or []
    return list(predictions[0].get("result") or []) if predictions else []


def _frame_of(task: dict[str, Any], frame_files: FrameFiles | None, where: str, path: Path) -> int:
    data = task.get("data") or {}
    if data.get("frame_id") is not None:
        return int(data["frame_id"]) + 1
    frame = frame_files.frame(str(data.get(IMAGE, ""))) if frame_files is not None else None
    if frame is None:
        raise DataFormatError(path, f"{where}: no frame_id in its data, and its image {data.get(IMAGE)!r} is not one "
                              "of the source's frames: import with the folder of these frames as source")
    return frame


def read_labelstudio(path: str | os.PathLike[str], frame_files: FrameFiles | None = None) -> list[SequenceLabels]:
    """The sequences of a Label Studio export (tasks grouped by their ``sequence``, else one named after the file).

    A task's frame is its ``frame_id`` + 1, else the position of its image in ``frame_files``. Rectangles give boxes,
    polygons masks (a box-less mask's box is the mask's); brush masks are left out with a warning (export polygons).
    Regions whose label ends in no number get new identities, with a warning.
    """
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFormatError(path, f"not a Label Studio JSON export ({exc.__class__.__name__}: {exc})") from None
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "data" in t for t in tasks):
        raise DataFormatError(path, "expected a list of tasks ({'data': {...}, 'annotations': [...]}), as Label "
                              "Studio's JSON export writes")
    sequences: dict[str, SequenceLabels] = {}
    warned: set[str] = set()
    for n, task in enumerate(tasks, start=1):
        where = f"task {task.get('id', n)}"
        frame = _frame_of(task, frame_files, where, path)
        boxes: dict[int, np.ndarray] = {}
        polygons: dict[int, list[np.ndarray]] = {}
        unnamed: dict[str, int] = {}
        width = height = 0
        for region in _chosen_result(task):
            kind, value = region.get("type"), region.get("value") or {}
            if kind == "brushlabels" and "brush" not in warned:
                warned.add("brush")
                log.warning("%s: brush masks are not read (Label Studio's own RLE): export polygons", path)
            if kind not in ("rectanglelabels", "polygonlabels"):
                continue
            try:
                width, height = int(region["original_width"]), int(region["original_height"])
                names = value[kind]
                label = str(names[0]) if names else ""
                track_id = trailing_id(label)
                if track_id is None:  # an unnumbered region: one new identity per region id
                    track_id = unnamed.setdefault(str(region.get("id", len(unnamed))), -len(unnamed) - 1)
                if kind == "rectanglelabels":
                    boxes[track_id] = np.array([value["x"] * width, value["y"] * height, value["width"] * width,
                                                value["height"] * height], dtype=np.float64) / 100
                else:
                    pts = np.asarray(value["points"], dtype=np.float64).reshape(-1, 2) * [width, height] / 100
                    polygons.setdefault(track_id, []).append(pts)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise DataFormatError(path, f"{where}, region {region.get('id')}: {exc.__class__.__name__}: "
                                      f"{exc}") from None
        if unnamed and "unnamed" not in warned:
            warned.add("unnamed")
            log.warning("%s: regions whose label ends in no animal number: each one is a new identity", path)
        anns = []
        next_id = max((i for i in (*boxes, *polygons) if i > 0), default=0)
        for track_id in sorted(set(boxes) | set(polygons), key=lambda i: (i < 0, abs(i))):
            mask = rle.from_polygons(polygons[track_id], height, width) if track_id in polygons else None
            box = boxes.get(track_id)
            if track_id < 0:  # unnumbered: after the numbered ones
                next_id += 1
            anns.append(Annotation(track_id if track_id > 0 else next_id, rle.bbox(mask) if box is None else box, mask))
        name = str((task.get("data") or {}).get("sequence") or path.stem)
        seq = sequences.setdefault(name, SequenceLabels(name, width, height))
        seq.width, seq.height = seq.width or width, seq.height or height
        if frame in seq.frames:
            raise DataFormatError(path, f"{where}: frame {frame} of {name} appears twice")
        seq.frames[frame] = anns
    for seq in sequences.values():
        seq.frames = dict(sorted(seq.frames.items()))
    return list(sequences.values())
