"""SAM-QA annotation benchmark: frames/s and peak RSS on 1,000 and 4,000-frame videos, student and teacher-sized
image encoders side by side (same SAM prompt encoder and mask decoder, same oracle prompts, CPU).

Each (encoder, length) runs in its own process, so its peak RSS is its own; memory must not grow with the
video: the script fails (exit 1) when a model's peak RSS at the longest length exceeds 1.2x that at the
shortest. Frames/s counts the whole loop (decode, encoder, decoder, clean-up, checks, durable store writes).
Without ``--checkpoint`` the SAM has random weights: it fails the checks on most frames, so each frame costs
a box pass, a recovery and a manual pass (an upper bound on the per-frame work); with a fine-tuned student
(``--checkpoint outputs/train/<run>/sam_finetune.pt``) the timing is the one a user sees.

    python scripts/bench_annotate.py --out outputs/bench_annotate.json [--lengths 1000 4000]
        [--encoders tiny_vit_5m vit_b] [--teacher-lengths 1000] [--image-size 256] [--checkpoint FILE]
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

from samqa_framework.utils.io import atomic_write_json


def child(encoder: str, frames: int, image_size: int, checkpoint: str | None, preset: str) -> dict:
    import torch
    from hydra.utils import instantiate

    from samqa_framework.annotate.runner import annotate_sequence
    from samqa_framework.api import compose
    from samqa_framework.data.sequence import Sequence

    torch.set_num_threads(2)
    torch.manual_seed(0)
    overrides = [f"data={preset}", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                 "data.sizes.quick.eval_frames=[]", f"model/encoder={encoder}", f"model.image_size={image_size}",
                 "annotator=samqa", "prompts=oracle", "logger=csv"]
    if checkpoint:
        overrides.append(f"model.checkpoint={checkpoint}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("annotate", [*overrides, f"out_dir={tmp}/labels"], output_dir=tmp)
        manifest = instantiate(cfg.data, _convert_="all").build(Path(tmp) / "data")
        seq = Sequence(Path(tmp) / "data" / manifest.train[0])
        annotator = instantiate(cfg.annotator, _convert_="all")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        result = annotate_sequence(annotator, seq, Path(tmp) / "labels", {}, progress=False,
                                   num_animals=manifest.num_animals)
        wall = time.perf_counter() - t0
    q = result.quality or {}
    return {"encoder": encoder, "frames": frames, "image_size": image_size, "checkpoint": checkpoint,
            "fps": frames / wall, "seconds": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024, "rss_before_loop_mb": rss_before, "interventions_per_100_frames": q.get(
                "interventions_per_100_frames"), "mean_box_iou": q.get("mean_box_iou")}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        encoder, frames, size, ckpt, preset = sys.argv[2:7]
        print(json.dumps(child(encoder, int(frames), int(size), None if ckpt == "-" else ckpt, preset)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--encoders", nargs="+", default=["tiny_vit_5m", "vit_b"])
    ap.add_argument("--teacher-lengths", type=int, nargs="+", default=[1000],
                    help="lengths for vit_b (about 0.6 s a frame at 256 px on 2 cores: 4,000 frames take ~45 min)")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--checkpoint", default=None, help="a fine-tuned student (used for the student encoder only)")
    ap.add_argument("--preset", default="synthetic_rats")
    args = ap.parse_args()
    rows = []
    for encoder in args.encoders:
        lengths = args.teacher_lengths if encoder.startswith("vit_") else args.lengths
        ckpt = args.checkpoint if (args.checkpoint and not encoder.startswith("vit_")) else "-"
        for frames in lengths:
            r = run_child(encoder, str(frames), str(args.image_size), ckpt, args.preset)
            print(f"{encoder} {frames} frames: {r['fps']:.2f} frames/s, peak RSS {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr, flush=True)
            rows.append(r)
    base = {r["frames"]: r for r in rows if r["encoder"] == args.encoders[0]}
    head = f"{'encoder':<13} {'frames':>7} {'frames/s':>9} {'peak RSS MB':>12} {'x student fps':>14} {'interv/100':>11}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        # the student at the same length, else at its shortest (frames/s does not depend on length)
        ref = base.get(r["frames"]) or (base[min(base)] if base else None)
        ratio = r["fps"] / ref["fps"] if ref else float("nan")
        iv = r["interventions_per_100_frames"]
        print(f"{r['encoder']:<13} {r['frames']:>7} {r['fps']:>9.2f} {r['peak_rss_mb']:>12.0f} {ratio:>13.2f}x "
              f"{iv if iv is None else round(iv, 1)!s:>11}")
    ok = True
    for encoder in args.encoders:
        mine = sorted((r for r in rows if r["encoder"] == encoder), key=lambda r: r["frames"])
        if len(mine) > 1:
            growth = mine[-1]["peak_rss_mb"] / mine[0]["peak_rss_mb"]
            print(f"{encoder}: peak RSS {mine[-1]['frames']} / {mine[0]['frames']} frames = {growth:.3f}")
            ok &= growth <= 1.2
    atomic_write_json(args.out, {"rows": rows, "flat_memory": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
