"""Instance masks as COCO run-length encoding (pycocotools), stored one JSON line per frame.

``<seq>/gt/masks.jsonl`` holds ``{"frame": 1, "instances": [{"id": 3, "rle": {"size": [h, w],
"counts": "..."}}, ...]}`` per line, so a long sequence is read frame by frame and appended to without
rewriting the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import AtomicStreamWriter

RLE = dict  # {"size": [h, w], "counts": str}


def encode(mask: np.ndarray) -> RLE:
    """Binary (H, W) mask to a JSON-ready COCO RLE."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: RLE) -> np.ndarray:
    """COCO RLE (string or bytes counts, or uncompressed list counts) to a bool (H, W) mask."""
    return mask_utils.decode(_compressed(rle)).astype(bool)


def _compressed(rle: RLE) -> dict:
    """The RLE as pycocotools' functions take it (compressed counts as bytes)."""
    if isinstance(rle.get("counts"), list):
        return mask_utils.frPyObjects(rle, *rle["size"])
    return {"size": rle["size"], "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
            else rle["counts"]}


def bbox(rle: RLE) -> np.ndarray:
    """Tight box (left, top, width, height) of the mask, as pycocotools computes it."""
    return np.asarray(mask_utils.toBbox(_compressed(rle)), dtype=np.float64)


def area(rle: RLE) -> int:
    return int(mask_utils.area(_compressed(rle)))


def _pixels(rle: RLE) -> int:
    """The pixel count the runs cover. Compressed counts (pycocotools' ``rleToString``): each run is a little-endian
    group of characters ``48 + 6 bits`` (5 value bits, 0x20 = another character follows, 0x10 in the last one =
    negative); from the fourth run on, a run is stored as its difference to the run two before."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return int(sum(counts))
    c = np.frombuffer(counts if isinstance(counts, bytes) else counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    if not len(c):
        return 0
    last = (c & 0x20) == 0  # the last character of a run
    if not last[-1]:
        raise ValueError("compressed counts end in the middle of a run")
    run = np.r_[0, np.cumsum(last)[:-1]]  # the run of each character
    k = np.arange(len(c)) - np.flatnonzero(np.r_[True, last[:-1]])[run]  # its place within the run
    x = np.bincount(run, weights=(c & 0x1F) << (5 * k)).astype(np.int64)
    x -= np.where(c[last] & 0x10, 1 << (5 * (k[last] + 1)), 0)  # sign extension
    runs = x.copy()
    runs[1::2], runs[2::2] = np.cumsum(x[1::2]), np.cumsum(x[2::2])
    return int(runs.sum())


def iou(a: RLE, b: RLE) -> float:
    """IoU of two masks of one size, computed on the run lengths (neither mask is decoded); 0 when both are empty.

    A ValueError if the runs do not cover the image exactly: pycocotools' own ``iou`` never returns on those."""
    for r in (a, b):
        if _pixels(r) != r["size"][0] * r["size"][1] or r["size"] != a["size"]:
            raise ValueError(f"runs of {_pixels(r)} pixels in a mask of size {r['size']} (other: {a['size']})")
    return float(mask_utils.iou([_compressed(a)], [_compressed(b)], [0])[0, 0])


def check(rle: object) -> RLE:
    """``rle`` if it is shaped like a COCO RLE (``size`` [h, w], ``counts`` string or list), else a ValueError;
    the counts themselves are checked by pycocotools when the mask is decoded."""
    size = rle.get("size") if isinstance(rle, dict) else None
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v >= 0 for v in size)
            or not isinstance(rle.get("counts"), str | list)):
        raise ValueError(f"not a COCO RLE ({{'size': [h, w], 'counts': ...}}): {str(rle)[:80]}")
    return rle


def to_polygons(rle: RLE) -> list[np.ndarray]:
    """The mask's outer outlines as polygons ((N, 2) pixel coordinates, largest first), for formats that store
    polygons (YOLO segmentation, Label Studio). Traced by OpenCV on the mask doubled in size, so that the outline runs
    along the pixels' edges, not through their centres: :func:`from_polygons` gives the same pixels back."""
    mask = decode(rle).astype(np.uint8)
    big = cv2.resize(mask, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in sorted(contours, key=cv2.contourArea, reverse=True):
        # a point of the doubled mask's outline is a half-pixel's centre: half of it + 0.25 lies on the pixel's edge
        points = (contour.reshape(-1, 2).astype(np.float32) + 0.5) / 2
        points = cv2.approxPolyDP(points.reshape(-1, 1, 2), 0.25, True).reshape(-1, 2)
        if len(points) >= 3:
            polygons.append(points.astype(np.float64))
    return polygons


def from_polygons(polygons: list[np.ndarray] | list[list[float]], height: int, width: int) -> RLE:
    """Polygons (pixel coordinates, (N, 2) or flat x, y lists) to one COCO RLE, as pycocotools rasterises them."""
    flat = [np.asarray(p, dtype=np.float64).ravel().tolist() for p in polygons]
    flat = [p for p in flat if len(p) >= 6]
    if not flat:
        return encode(np.zeros((height, width), bool))
    merged = mask_utils.merge(mask_utils.frPyObjects(flat, height, width))
    return {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}


class FrameMasks:
    """The masks of increasing frames of a masks file, read forward one line at a time (memory does not grow with
    the sequence); asking for an earlier frame re-opens the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._it: Iterator[tuple[int, dict[int, RLE]]] | None = None
        self._current: tuple[int, dict[int, RLE]] = (0, {})

    def of(self, frame: int) -> dict[int, RLE]:
        if self._it is None or frame < self._current[0]:
            self._it, self._current = iter_masks(self.path), (0, {})
        while self._current[0] < frame:
            self._current = next(self._it, (10**12, {}))
        return self._current[1] if self._current[0] == frame else {}


class MaskWriter(AtomicStreamWriter):
    """Append frames of instance masks to a JSON-lines file, written as ``.tmp`` and renamed on close."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        # stays open across write() calls until close()/abort(), so no `with` block here
        self._fh = open(self.tmp, "w", encoding="utf-8")

    def write(self, frame: int, instances: list[tuple[int, RLE]]) -> None:
        rec = {"frame": int(frame), "instances": [{"id": int(i), "rle": r} for i, r in instances]}
        self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def _release(self) -> None:
        self._fh.close()


def iter_masks(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[int, RLE]]]:
    """Stream ``(frame, {id: rle})`` from a masks file, one line at a time."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "mask file not found")
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
                yield int(rec["frame"]), {int(inst["id"]): inst["rle"] for inst in rec["instances"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(path, f"bad mask record ({exc.__class__.__name__}: {exc})", lineno) from None
