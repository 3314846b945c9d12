"""COCO instance JSON, both ways, through pycocotools: :func:`write_coco` and :func:`read_coco`.

Frames of a video are COCO images with mmtracking's CocoVID fields (``videos: [{id, name}]``, an image's ``video_id``
and 0-based ``frame_id``); an animal's identity is its annotation's ``track_id`` (also written as
``attributes.track_id``, where CVAT keeps it, and read from ``instance_id`` too). Masks are COCO RLE (polygons and
uncompressed RLE are read too); a box-only annotation has an empty ``segmentation``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from samqa_framework.data import rle
from samqa_framework.data.formats.labels import Annotation, FrameFiles, SequenceLabels
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json

log = logging.getLogger(__name__)


def write_coco(path: str | os.PathLike[str], sequences: Sequence[SequenceLabels], file_name: Callable[[str, int], str],
               category: str = "animal") -> Path:
    """Write the sequences' labelled frames as one COCO file; ``file_name(sequence, frame)`` names each image."""
    videos, images, annotations = [], [], []
    for video_id, seq in enumerate(sequences, start=1):
        videos.append({"id": video_id, "name": seq.name, "width": seq.width, "height": seq.height})
        for frame, anns in seq.frames.items():
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": file_name(seq.name, frame), "width": seq.width,
                           "height": seq.height, "video_id": video_id, "frame_id": frame - 1})
            for a in anns:
                x, y, w, h = (float(v) for v in a.box)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": [x, y, w, h],
                    "area": float(rle.area(a.rle)) if a.rle is not None else w * h, "iscrowd": 0,
                    "segmentation": a.rle if a.rle is not None else [], "score": float(a.score),
                    "track_id": a.track_id, "instance_id": a.track_id, "attributes": {"track_id": a.track_id}})
    data = {"info": {"description": "samqa-export", "version": "1.0"}, "licenses": [],
            "categories": [{"id": 1, "name": category, "supercategory": "animal"}], "videos": videos,
            "images": images, "annotations": annotations}
    atomic_write_json(path, data, indent=None)
    return Path(path)


def _track_id(ann: dict[str, Any]) -> int | None:
    for value in (ann.get("track_id"), (ann.get("attributes") or {}).get("track_id"), ann.get("instance_id")):
        if value is not None:
            return int(value)
    return None


def read_coco(path: str | os.PathLike[str], frame_files: FrameFiles | None = None) -> list[SequenceLabels]:
    """The sequences of a COCO file: one per ``videos`` entry (without them, one named after the file).

    An image's frame is its ``frame_id`` + 1, else the position of its file in ``frame_files`` (a folder of frames);
    an annotation without an identity gets its place in its image (a warning says so: such identities link nothing
    across frames). Errors name the file and the image or annotation.
    """
    from pycocotools.coco import COCO  # prints "loading annotations...": kept off the console below

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "COCO file not found")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise DataFormatError(path, f"not a COCO instance file ({exc.__class__.__name__}: {exc})") from None
    names = {v["id"]: str(v.get("name") or v["id"]) for v in coco.dataset.get("videos", [])}
    sequences: dict[Any, SequenceLabels] = {}
    unnamed = 0
    for image_id in sorted(coco.imgs):
        img = coco.imgs[image_id]
        where = f"image {image_id} ({img.get('file_name')})"
        if "frame_id" in img:
            frame = int(img["frame_id"]) + 1
        elif frame_files is not None and frame_files.frame(str(img.get("file_name", ""))) is not None:
            frame = frame_files.frame(str(img["file_name"]))
        else:
            raise DataFormatError(path, f"{where}: no frame_id, and its file is not one of the source's frames: give "
                                  "frame_id (0-based) or import with the folder of these frames as source")
        key = img.get("video_id")
        seq = sequences.setdefault(key, SequenceLabels(names.get(key, path.stem), int(img.get("width", 0)),
                                                       int(img.get("height", 0))))
        if frame in seq.frames:
            raise DataFormatError(path, f"{where}: frame {frame} of {seq.name} appears twice")
        anns = []
        for k, ann in enumerate(coco.imgToAnns.get(image_id, []), start=1):
            track_id = _track_id(ann)
            if track_id is None:
                unnamed += 1
                track_id = k
            try:
                mask = None
                if ann.get("segmentation"):
                    compressed = coco.annToRLE(ann)
                    mask = {"size": [int(v) for v in compressed["size"]], "counts": compressed["counts"].decode("ascii")
                            if isinstance(compressed["counts"], bytes) else compressed["counts"]}
                anns.append(Annotation(track_id, [float(v) for v in ann["bbox"]], mask, float(ann.get("score", 1.0))))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise DataFormatError(path, f"annotation {ann.get('id')} of {where}: {exc.__class__.__name__}: "
                                      f"{exc}") from None
        ids = [a.track_id for a in anns]
        if len(set(ids)) < len(ids):
            raise DataFormatError(path, f"{where}: identity {max(ids, key=ids.count)} twice in one frame")
        seq.frames[frame] = anns
    if unnamed:
        log.warning("%s: %d annotation(s) without track_id: numbered by their place in each image (these identities "
                    "are not the same animal from frame to frame)", path, unnamed)
    for seq in sequences.values():
        seq.frames = dict(sorted(seq.frames.items()))
    return list(sequences.values())

