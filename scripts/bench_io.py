"""Streaming I/O benchmark: generate and read back 1,000 and 10,000-frame synthetic sequences.

Each length runs in its own process so that its peak RSS is its own. Memory must not grow with the
video's length: the script fails (exit 1) when peak RSS at 10,000 frames exceeds 1.2x that at 1,000.

    python scripts/bench_io.py --out outputs/bench_io.json [--lengths 1000 10000] [--preset synthetic_mice]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(frames: int, preset: str, width: int, height: int) -> dict:
    from hydra.utils import instantiate

    from samqa_framework.api import compose
    from samqa_framework.data import rle
    from samqa_framework.data.sequence import Sequence

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("generate", [f"data={preset}", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                                   "data.sizes.quick.eval_frames=[]", f"data.sizes.quick.width={width}",
                                   f"data.sizes.quick.height={height}"], output_dir=tmp)
        builder = instantiate(cfg.data, _convert_="all")
        t0 = time.perf_counter()
        manifest = builder.build(Path(tmp))
        t_gen = time.perf_counter() - t0
        rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        seq = Sequence(Path(tmp) / manifest.train[0])
        t0 = time.perf_counter()
        n = 0
        checksum = 0
        masks = rle.iter_masks(seq.masks_path)
        for frame in seq.frames():
            _, inst = next(masks)
            checksum += int(frame[::16, ::16].sum()) + sum(rle.area(r) for r in inst.values())
            n += 1
        gt = seq.gt()
        t_read = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": frames, "size": f"{width}x{height}", "generate_fps": frames / t_gen, "read_fps": n / t_read,
            "frames_read": n, "gt_rows": len(gt), "peak_rss_mb": peak, "peak_rss_after_generate_mb": rss_gen,
            "checksum": checksum}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--preset", default="synthetic_mice")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.preset, args.width, args.height)))
        return 0
    results = []
    for n in args.lengths:
        cmd = [sys.executable, __file__, "--out", str(args.out), "--child", str(n), "--preset", args.preset,
               "--width", str(args.width), "--height", str(args.height)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{n:>6} frames  generate {r['generate_fps']:7.1f} fps  read {r['read_fps']:7.1f} fps  "
              f"peak RSS {r['peak_rss_mb']:7.1f} MB", flush=True)
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    report = {"preset": args.preset, "runs": results, "peak_rss_ratio_longest_vs_shortest": ratio,
              "rss_ratio_limit": 1.2, "ok": ratio < 1.2}
    print(f"peak RSS ratio {args.lengths[-1]} vs {args.lengths[0]} frames: {ratio:.3f} (limit 1.2)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
