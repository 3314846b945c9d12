"""Contact sheets: a few frames of a sequence with its boxes, identities and mask outlines drawn on."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.io import atomic_open

PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167), (255, 255, 255)]  # Okabe-Ito, readable for colour-blind viewers (RGB)


def draw_labels(frame: np.ndarray, rows: MotTable, masks: dict[int, rle.RLE] | None = None,
                scale: float = 1.0) -> np.ndarray:
    """BGR frame resized by ``scale``, with each row's box, id (flag-0 rows thin, marked ignored) and mask
    outline drawn at the output resolution so that small animals stay readable."""
    out = frame if scale == 1.0 else cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                                                 if scale < 1 else cv2.INTER_LINEAR)
    out = out.copy()
    for i in range(len(rows)):
        tid = int(rows.track_id[i])
        r, g, b = PALETTE[(tid - 1) % len(PALETTE)]
        colour = (b, g, r)
        if masks and tid in masks:
            contours, _ = cv2.findContours(rle.decode(masks[tid]).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            contours = [(c.astype(np.float64) * scale).round().astype(np.int32) for c in contours]
            cv2.drawContours(out, contours, -1, colour, 1, cv2.LINE_AA)
        x, y, w, h = rows.box[i] * scale
        thick = 2 if rows.conf[i] > 0 else 1
        cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), colour, thick, cv2.LINE_AA)
        label = f"{tid}" + ("" if rows.conf[i] > 0 else " (ignored)")
        cv2.putText(out, label, (int(x), max(10, int(y) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def contact_sheet(seq: Sequence, out_path: str | os.PathLike[str], num: int = 6, cols: int = 3,
                  tile_width: int = 480) -> Path:
    """Save a PNG grid of ``num`` evenly spaced frames with ground truth drawn on (the bare frames for an unlabelled
    sequence); returns its path."""
    src = seq.frames()
    gt = seq.gt() if seq.has_gt() else MotTable.empty()
    indices = np.linspace(0, len(src) - 1, num).round().astype(int)
    wanted = {int(i) + 1 for i in indices}
    masks: dict[int, dict[int, rle.RLE]] = {}
    if seq.has_masks():
        for frame, inst in rle.iter_masks(seq.masks_path):
            if frame in wanted:
                masks[frame] = inst
            if len(masks) == len(wanted):
                break
    tiles = []
    for idx in indices:
        frame = int(idx) + 1
        img = src.read(int(idx))
        img = draw_labels(img, gt.rows_of(frame), masks.get(frame), scale=tile_width / img.shape[1])
        cv2.putText(img, f"{seq.name} frame {frame}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(img)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[r:r + cols]) for r in range(0, len(tiles), cols)])
    out_path = Path(out_path)
    ok, buf = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError(f"cannot encode preview for {seq.root}")
    with atomic_open(out_path, "wb") as fh:
        fh.write(buf.tobytes())
    return out_path
