"""Streaming I/O benchmark: generate and read back 1,000 and 10,000-frame synthetic sequences.

Each length runs in its own process so that its peak RSS is its own. Memory must not grow with the
video's length: the script fails (exit 1) when peak RSS at 10,000 frames exceeds 1.2x that at 1,000.

Side by side (``frame_cache`` in the report, in a process of its own): training's random-order reads of
``--cache-reads`` frames of a ``--cache-frames``-frame video through ``FramesBase.read_rgb``, decoding each from the
video (a seek per frame) and from the decoded-frame cache (``data.frame_cache``), whose one-off build is timed
apart. ``--cache-frames 0`` leaves it out.

    python scripts/bench_io.py --out outputs/bench_io.json [--lengths 1000 10000] [--preset synthetic_mice]
                               [--cache-frames 1000] [--cache-reads 200]
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


def _generate(tmp: str, frames: int, preset: str, width: int, height: int):
    """A one-sequence synthetic data set of ``frames`` frames in ``tmp``; its manifest and the build time."""
    from hydra.utils import instantiate

    from samqa_framework.api import compose

    cfg = compose("generate", [f"data={preset}", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                               "data.sizes.quick.eval_frames=[]", f"data.sizes.quick.width={width}",
                               f"data.sizes.quick.height={height}"], output_dir=tmp)
    builder = instantiate(cfg.data, _convert_="all")
    t0 = time.perf_counter()
    manifest = builder.build(Path(tmp))
    return manifest, time.perf_counter() - t0


def child(frames: int, preset: str, width: int, height: int) -> dict:
    from samqa_framework.data import rle
    from samqa_framework.data.sequence import Sequence

    with tempfile.TemporaryDirectory() as tmp:
        manifest, t_gen = _generate(tmp, frames, preset, width, height)
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


def cache_child(frames: int, reads: int, preset: str, width: int, height: int) -> dict:
    """Random-order ``read_rgb`` of ``reads`` frames: from the video vs from the frame cache (its build apart)."""
    import numpy as np

    from samqa_framework.data.datamodules import FramesBase
    from samqa_framework.data.sequence import Sequence

    with tempfile.TemporaryDirectory() as tmp:
        manifest, _ = _generate(tmp, frames, preset, width, height)
        seq = Sequence(Path(tmp) / manifest.train[0])
        refs = [(0, f) for f in range(frames)]  # the cache holds every frame training may draw
        order = np.random.default_rng(0).permutation(frames)[:reads].tolist()
        plain = FramesBase([seq], refs, 64)
        t0 = time.perf_counter()
        expected = [plain.read_rgb(i)[::16, ::16].copy() for i in order]
        t_plain = time.perf_counter() - t0
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        cached = FramesBase([seq], refs, 64, frame_cache=Path(tmp) / "frame_cache")
        t_build = time.perf_counter() - t0
        rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        got = [cached.read_rgb(i)[::16, ::16].copy() for i in order]
        t_cached = time.perf_counter() - t0
        same = all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
    return {"frames": frames, "reads": reads, "size": f"{width}x{height}", "codec": "mp4v (the synthetic builder's)",
            "uncached_ms_per_read": 1000 * t_plain / reads, "cached_ms_per_read": 1000 * t_cached / reads,
            "build_s": t_build, "build_ms_per_frame": 1000 * t_build / frames,
            "speedup_per_read": t_plain / t_cached, "same_frames": same,
            # the build streams frame by frame: the peak must not rise by the cache's size (the cached reads
            # afterwards do count the mapped pages they touch)
            "peak_rss_before_build_mb": rss_before, "peak_rss_after_build_mb": rss_build,
            "cache_mb": frames * width * height * 3 / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--preset", default="synthetic_mice")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--cache-frames", type=int, default=1000, help="frames of the frame-cache video (0: skip)")
    ap.add_argument("--cache-reads", type=int, default=200, help="random-order reads timed each way")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cache-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cache_child:
        print(json.dumps(cache_child(args.cache_frames, min(args.cache_reads, args.cache_frames), args.preset,
                                     args.width, args.height)))
        return 0
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
    if args.cache_frames > 0:
        cmd = [sys.executable, __file__, "--out", str(args.out), "--cache-child", "--cache-frames",
               str(args.cache_frames), "--cache-reads", str(args.cache_reads), "--preset", args.preset, "--width",
               str(args.width), "--height", str(args.height)]
        c = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        report["frame_cache"] = c
        report["ok"] = report["ok"] and c["same_frames"]
        print(f"random reads of {c['reads']} of {c['frames']} frames ({c['size']}): from the video "
              f"{c['uncached_ms_per_read']:.1f} ms/frame, from the frame cache {c['cached_ms_per_read']:.2f} ms/frame "
              f"({c['speedup_per_read']:.0f}x; one-off build {c['build_s']:.1f} s = {c['build_ms_per_frame']:.1f} "
              f"ms/frame){'' if c['same_frames'] else '  FRAMES DIFFER'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
