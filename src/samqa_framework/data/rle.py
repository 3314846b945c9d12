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
    if isinstance(rle.get("counts"), list):
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def bbox(rle: RLE) -> np.ndarray:
    """Tight box (left, top, width, height) of the mask, as pycocotools computes it."""
    r = {"size": rle["size"], "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
         else rle["counts"]}
    return np.asarray(mask_utils.toBbox(r), dtype=np.float64)


def area(rle: RLE) -> int:
    r = {"size": rle["size"], "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
         else rle["counts"]}
    return int(mask_utils.area(r))


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
