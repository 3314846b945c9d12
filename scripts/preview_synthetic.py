"""Render a few frames of a synthetic scene preset and save a PNG contact sheet to look at.

    .venv/bin/python scripts/preview_synthetic.py --preset rats --out outputs/preview_rats.png
    .venv/bin/python scripts/preview_synthetic.py --preset mice --width 1640 --height 1232 --frames 60 --out x.png

Each tile is one frame with the ground-truth mask contours and ids drawn over it (``--raw`` leaves them
off), the frame index and each animal's visibility. The render speed (frames/s, without the sheet) is
printed, so the script doubles as a quick benchmark.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from samqa_framework.data.synthetic import RenderedFrame, SceneRenderer, SceneSpec

REPO = Path(__file__).resolve().parents[1]
PRESET_DIR = REPO / "conf" / "data" / "scene"
# the animal count lives in the data config (conf/data/synthetic_*.yaml), not in the scene preset
DEFAULT_ANIMALS = {"rats": 2, "mice": 4}
COLORS = [(0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 128, 0), (0, 128, 255), (255, 255, 255)]


def overlay(frame: RenderedFrame, index: int, raw: bool) -> np.ndarray:
    img = frame.image.copy()
    h = img.shape[0]
    font_scale = max(0.35, h / 600)
    thick = max(1, round(h / 400))
    if not raw:
        for k, (i, m) in enumerate(zip(frame.ids, frame.masks, strict=True)):
            color = COLORS[k % len(COLORS)]
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img, contours, -1, color, thick, cv2.LINE_AA)
            ys, xs = np.nonzero(m)
            if len(xs):
                cv2.putText(img, str(int(i)), (int(xs.mean()), int(ys.mean())), cv2.FONT_HERSHEY_SIMPLEX,
                            font_scale, color, thick, cv2.LINE_AA)
    label = f"t={index} vis=" + ",".join(f"{v:.2f}" for v in frame.visibility)
    cv2.putText(img, label, (4, int(14 * font_scale / 0.35)), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                thick, cv2.LINE_AA)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="rats", help="name in conf/data/scene/ or a path to a YAML file")
    ap.add_argument("--num-animals", type=int, default=None, help="default: 2 for rats, 4 for mice")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=300, help="frames rendered")
    ap.add_argument("--tiles", type=int, default=12, help="frames shown on the sheet (evenly spaced)")
    ap.add_argument("--start", type=int, default=0, help="first frame shown")
    ap.add_argument("--step", type=int, default=0, help="frames between tiles (0: spread over all frames)")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--raw", action="store_true", help="no mask contours or ids")
    ap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    args = ap.parse_args()

    path = Path(args.preset) if args.preset.endswith((".yaml", ".yml")) else PRESET_DIR / f"{args.preset}.yaml"
    spec = SceneSpec.from_dict(yaml.safe_load(path.read_text()) or {})
    n_animals = args.num_animals or DEFAULT_ANIMALS.get(path.stem, 2)
    renderer = SceneRenderer(spec, n_animals, args.width, args.height, args.fps, args.seed)

    step = args.step or max(1, (args.frames - args.start) // max(args.tiles, 1))
    wanted = {args.start + i * step for i in range(args.tiles)}
    tiles: list[np.ndarray] = []
    min_vis = 1.0
    t0 = time.perf_counter()
    spent_on_tiles = 0.0
    for t, frame in enumerate(renderer.render(args.frames)):
        min_vis = min(min_vis, float(frame.visibility.min()))
        if t in wanted:
            t1 = time.perf_counter()
            tiles.append(overlay(frame, t, args.raw))
            spent_on_tiles += time.perf_counter() - t1
    elapsed = time.perf_counter() - t0 - spent_on_tiles
    print(f"{path.stem}: {args.frames} frames at {args.width}x{args.height} in {elapsed:.2f} s "
          f"= {args.frames / max(elapsed, 1e-9):.1f} frames/s; lowest visibility {min_vis:.2f}")

    if not tiles:
        raise SystemExit("no frames selected for the sheet")
    cols = min(args.cols, len(tiles))
    rows = -(-len(tiles) // cols)
    h, w = tiles[0].shape[:2]
    sheet = np.zeros((rows * (h + 4), cols * (w + 4), 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * (h + 4):r * (h + 4) + h, c * (w + 4):c * (w + 4) + w] = tile
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
