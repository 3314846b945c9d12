"""SAM-QA annotation benchmark: today's inline loop and the overlapped one side by side in one run (frames/s, label
quality, peak RSS at two lengths), optionally with the ONNX Runtime encoder, and other image encoders.

Paths (``--runs PATH:LENGTH,LENGTH ...``; each (encoder, path, length) runs in its own process, so its peak RSS is
its own, on the same data, model and oracle prompts):

- ``inline``: ``read_ahead=0 encode_ahead=false``, the loop as it was (decode, encode, prompt, check, store in turn);
- ``overlap``: ``read_ahead=4 encode_ahead=true`` (conf/annotate.yaml's defaults): frames decoded ahead on a reader
  thread, the next frame's image embedding computed on a worker thread while the current frame is finished;
- ``overlap_ort``: ``overlap`` with ``annotator.predictor.runtime=onnxruntime``;
- ``overlap_1t``: ``overlap`` with the encode-ahead worker on one torch thread
  (``annotator.predictor.ahead_threads=1``);
- ``read_ahead``: ``read_ahead=4 encode_ahead=false`` (decoding ahead only; today's default);
- ``read_ahead_ort`` / ``read_ahead_int8``: ``read_ahead`` with ``annotator.predictor.runtime=onnxruntime`` /
  ``onnxruntime_int8`` (the encoder's matrix products in int8: its labels against inline's show what that costs),
  the mask decoder in ONNX Runtime too (float32); ``read_ahead_int8_enc``: the int8 encoder with the eager decoder
  (``annotator.predictor.runtime_decoder=false``), to split the gain between the two;
- ``read_ahead_ov`` / ``read_ahead_ov_bf16``: the same with ``runtime=openvino`` / ``openvino_bf16`` (OpenVINO; the
  encoder at float32 / bfloat16, the decoder at float32); ``read_ahead_ov_bf16_enc``: its encoder, the eager decoder;
- a ``+passive`` suffix (``inline+passive``) runs that path with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads sleep
  instead of spinning while they wait. On a CPU shared with other jobs, torch's spinning threads can waste most of
  the process's CPU share (libgomp spins at full length while its threads fit the cores, and throttles the spin once
  a second team, e.g. the encode-ahead worker's, makes them outnumber the cores); the passive pair shows what the
  overlap itself gains, apart from that effect.

Frames/s counts the whole loop (decode, encoder, decoder, clean-up, checks, durable store writes). Each path is
compared with ``inline`` at the same length (the same frames), a ``+passive`` one also with ``inline+passive``:
frames/s ratio, mean box IoU against the ground truth
and its difference, and whether the label files are byte-identical. The machine's load average is recorded at the
start and end of the run and of each process. Exit status 1 when a path's peak RSS at its longest length exceeds
1.2x that at its shortest, or when its mean box IoU differs from inline's by more than ``--max-iou-diff``.
Without ``--checkpoint`` the SAM has random weights and fails the checks on most frames (an upper bound on the
per-frame work); with a fine-tuned student the timing is the one a user sees.

    python scripts/bench_annotate.py --out docs/bench_annotate.json --checkpoint outputs/train/<run>/sam_finetune.pt
        --image-size 320 --runs inline:120 overlap:120,300,1200 overlap_ort:120 inline+passive:120 overlap+passive:120
    python scripts/bench_annotate.py --out FILE.json --encoders tiny_vit_5m vit_b --teacher-lengths 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from samqa_framework.utils.io import atomic_write_json


def _runtime(base: list[str], runtime: str, decoder: bool = True) -> list[str]:
    """``base`` with the predictor's encoder (and, with ``decoder``, its mask decoder) on ``runtime``, strictly."""
    return [*base, f"annotator.predictor.runtime={runtime}", "annotator.predictor.runtime_strict=true",
            *([] if decoder else ["annotator.predictor.runtime_decoder=false"])]


OVERLAP = ["read_ahead=4", "encode_ahead=true"]
READ_AHEAD = ["read_ahead=4", "encode_ahead=false"]  # frames decoded ahead, the encoder inline
# path -> the overrides it runs with (everything else is shared)
PATHS: dict[str, list[str]] = {
    "inline": ["read_ahead=0", "encode_ahead=false"],
    "overlap": OVERLAP,
    "overlap_ort": _runtime(OVERLAP, "onnxruntime"),
    # the encoder ahead on one thread while the loop keeps torch's count: two teams no longer outnumber the cores
    "overlap_1t": [*OVERLAP, "annotator.predictor.ahead_threads=1"],
    "read_ahead": READ_AHEAD,
    # the default loop (read_ahead) with the encoder (float32, int8 products, bfloat16) and the decoder (float32) on
    # ONNX Runtime or OpenVINO; *_enc: the encoder only
    "read_ahead_ort": _runtime(READ_AHEAD, "onnxruntime"),
    "read_ahead_int8": _runtime(READ_AHEAD, "onnxruntime_int8"),
    "read_ahead_int8_enc": _runtime(READ_AHEAD, "onnxruntime_int8", decoder=False),
    "read_ahead_ov": _runtime(READ_AHEAD, "openvino"),
    "read_ahead_ov_bf16": _runtime(READ_AHEAD, "openvino_bf16"),
    "read_ahead_ov_bf16_enc": _runtime(READ_AHEAD, "openvino_bf16", decoder=False),
}
PASSIVE = "+passive"
BASELINE = "inline"
RSS_LIMIT = 1.2


def parse_runs(specs: Sequence[str]) -> dict[str, list[int]]:
    """``PATH:LENGTH,LENGTH`` specs -> {path: sorted lengths}."""
    runs: dict[str, list[int]] = {}
    for spec in specs:
        path, _, lengths = spec.partition(":")
        if path.removesuffix(PASSIVE) not in PATHS or not lengths:
            raise SystemExit(f"--runs {spec!r}: expected PATH:LENGTH[,LENGTH...] with PATH one of "
                             f"{', '.join(PATHS)} (optionally +passive)")
        runs[path] = sorted({int(n) for n in lengths.split(",")})
    if BASELINE not in runs:
        raise SystemExit(f"--runs must include {BASELINE}:<length> (today's path, what the others are compared with)")
    return runs


def base_overrides(preset: str, frames: int, encoder: str, image_size: int, checkpoint: str | None) -> list[str]:
    overrides = [f"data={preset}", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                 "data.sizes.quick.eval_frames=[]", f"model/encoder={encoder}", f"model.image_size={image_size}",
                 "annotator=samqa", "prompts=oracle", "logger=csv", "progress=false"]
    return [*overrides, f"model.checkpoint={checkpoint}"] if checkpoint else overrides


def child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """One (encoder, path, length) in this process: annotate, then report speed, quality and memory."""
    import torch
    from hydra.utils import instantiate

    from samqa_framework.annotate.runner import annotate_sequence
    from samqa_framework.api import compose
    from samqa_framework.data.sequence import DatasetManifest

    torch.manual_seed(0)
    path = spec["path"].removesuffix(PASSIVE)
    overrides = [*base_overrides(spec["preset"], spec["data_frames"], spec["encoder"], spec["image_size"],
                                 spec["checkpoint"]), *PATHS[path],
                 f"annotator.predictor.runtime_cache_dir={spec['onnx_cache']}"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("annotate", [*overrides, f"out_dir={tmp}/labels"], output_dir=tmp)
        data = Path(spec["data_dir"])
        manifest = DatasetManifest.read(data)
        seq = manifest.sequences(data, "train")[0]
        annotator = instantiate(cfg.annotator, _convert_="all")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load_start = os.getloadavg()
        t0, c0 = time.perf_counter(), time.process_time()
        result = annotate_sequence(annotator, seq, Path(tmp) / "labels", {}, max_frames=spec["frames"],
                                   progress=False, num_animals=manifest.num_animals, read_ahead=cfg.read_ahead,
                                   encode_ahead=cfg.encode_ahead)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        labels_sha = hashlib.sha256((Path(tmp) / "labels" / "labels.jsonl").read_bytes()).hexdigest()
    q = result.quality or {}
    return {"encoder": spec["encoder"], "path": spec["path"], "frames": result.frames,
            "image_size": spec["image_size"], "checkpoint": spec["checkpoint"], "overrides": PATHS[path],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch_threads": torch.get_num_threads(),
            "fps": result.frames / wall, "seconds": wall, "cpu_per_wall": cpu / wall,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_loop_mb": rss_before,
            "encoder_calls": getattr(annotator.predictor, "encoder_calls", None),
            "mean_box_iou": q.get("mean_box_iou"),
            "interventions_per_100_frames": q.get("interventions_per_100_frames"),
            "labels_sha256": labels_sha, "load_average": {"start": load_start, "end": os.getloadavg()}}


def run_child(spec: Mapping[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)  # each path runs as its name says, whatever this shell exports
    if spec["path"].endswith(PASSIVE):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(dict(spec))], capture_output=True,
                          text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {spec['encoder']} {spec['path']} {spec['frames']} failed:\n"
                           f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each path's row beside ``inline``'s of the same encoder and length (the same frames); each ``+passive`` path
    also beside ``inline+passive``'s (what the overlap gains with OpenMP's spinning out of the picture)."""
    by = {(r["encoder"], r["path"], r["frames"]): r for r in rows}
    out = []
    for r in rows:
        baselines = [BASELINE] + ([BASELINE + PASSIVE] if r["path"].endswith(PASSIVE) else [])
        for name in baselines:
            ref = by.get((r["encoder"], name, r["frames"]))
            if ref is None or ref is r:
                continue
            iou, ref_iou = r["mean_box_iou"], ref["mean_box_iou"]
            out.append({"encoder": r["encoder"], "path": r["path"], "baseline": name, "frames": r["frames"],
                        "fps": r["fps"], "baseline_fps": ref["fps"], "speedup": r["fps"] / ref["fps"],
                        "mean_box_iou": iou, "baseline_mean_box_iou": ref_iou,
                        "box_iou_diff": None if iou is None or ref_iou is None else iou - ref_iou,
                        "labels_identical": r["labels_sha256"] == ref["labels_sha256"]})
    return out


def rss_growth(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Peak RSS at each (encoder, path)'s longest length over its shortest."""
    out = []
    for key in dict.fromkeys((r["encoder"], r["path"]) for r in rows):
        mine = sorted((r for r in rows if (r["encoder"], r["path"]) == key), key=lambda r: r["frames"])
        if len(mine) > 1:
            out.append({"encoder": key[0], "path": key[1], "short": mine[0]["frames"], "long": mine[-1]["frames"],
                        "short_mb": mine[0]["peak_rss_mb"], "long_mb": mine[-1]["peak_rss_mb"],
                        "ratio": mine[-1]["peak_rss_mb"] / mine[0]["peak_rss_mb"]})
    return out


def report_text(rows: Sequence[Mapping[str, Any]], comparisons: Sequence[Mapping[str, Any]],
                growth: Sequence[Mapping[str, Any]]) -> str:
    w = max([16, *(len(r["path"]) for r in rows)])
    head = (f"{'encoder':<12} {'path':<{w}} {'frames':>6} {'frames/s':>9} {'cpu/wall':>8} {'peak RSS MB':>11} "
            f"{'box IoU':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        iou = "-" if r["mean_box_iou"] is None else f"{r['mean_box_iou']:.4f}"
        lines.append(f"{r['encoder']:<12} {r['path']:<{w}} {r['frames']:>6} {r['fps']:>9.2f} {r['cpu_per_wall']:>8.2f} "
                     f"{r['peak_rss_mb']:>11.0f} {iou:>8}")
    lines.append("")
    for c in comparisons:
        diff = "-" if c["box_iou_diff"] is None else f"{c['box_iou_diff']:+.4f}"
        lines.append(f"{c['encoder']} {c['path']} vs {c['baseline']} at {c['frames']} frames: {c['fps']:.2f} / "
                     f"{c['baseline_fps']:.2f} frames/s = {c['speedup']:.2f}x; box IoU diff {diff}; labels "
                     f"{'identical' if c['labels_identical'] else 'differ'}")
    for g in growth:
        lines.append(f"{g['encoder']} {g['path']}: peak RSS {g['long']} / {g['short']} frames = {g['ratio']:.3f}")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runs", nargs="+", default=["inline:1000,4000", "overlap:1000,4000"],
                    help="PATH:LENGTH[,LENGTH...] per path (inline, overlap, overlap_ort, overlap_1t, read_ahead; "
                         "+passive suffix)")
    ap.add_argument("--encoders", nargs="+", default=["tiny_vit_5m"])
    ap.add_argument("--teacher-lengths", type=int, nargs="+", default=[1000],
                    help="lengths for vit_* encoders (about 0.6 s a frame at 256 px on 2 cores), replacing --runs'")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--checkpoint", default=None, help="a fine-tuned student (used for the student encoder only)")
    ap.add_argument("--preset", default="synthetic_rats")
    ap.add_argument("--max-iou-diff", type=float, default=0.01,
                    help="a path whose mean box IoU differs from inline's by more fails the run")
    ap.add_argument("--notes", default="", help="free text kept in the report (e.g. what else ran on the machine)")
    args = ap.parse_args()
    runs = parse_runs(args.runs)
    longest = max(max(v) for v in [*runs.values(), args.teacher_lengths])
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from hydra.utils import instantiate

        from samqa_framework.api import compose

        data_dir = Path(tmp) / "data"  # built once, as long as the longest run; each run labels its prefix
        cfg = compose("annotate", base_overrides(args.preset, longest, args.encoders[0], args.image_size, None),
                      output_dir=Path(tmp) / "compose")
        instantiate(cfg.data, _convert_="all").build(data_dir)
        lengths = sorted({n for v in runs.values() for n in v})
        for encoder in args.encoders:
            teacher = encoder.startswith("vit_")
            for frames in sorted(set(args.teacher_lengths)) if teacher else lengths:
                for path, path_lengths in runs.items():  # every path at one length before the next length
                    if not teacher and frames not in path_lengths:
                        continue
                    spec = {"encoder": encoder, "path": path, "frames": frames, "data_frames": longest,
                            "data_dir": str(data_dir), "image_size": args.image_size, "preset": args.preset,
                            "checkpoint": None if teacher else args.checkpoint, "onnx_cache": str(Path(tmp) / "onnx")}
                    r = run_child(spec)
                    print(f"{encoder} {path} {frames} frames: {r['fps']:.2f} frames/s, peak RSS "
                          f"{r['peak_rss_mb']:.0f} MB, load {r['load_average']['start'][0]:.2f}",
                          file=sys.stderr, flush=True)
                    rows.append(r)
    comparisons, growth = compare(rows), rss_growth(rows)
    print(report_text(rows, comparisons, growth))
    flat = all(g["ratio"] <= RSS_LIMIT for g in growth)
    close = all(c["box_iou_diff"] is None or abs(c["box_iou_diff"]) <= args.max_iou_diff for c in comparisons)
    atomic_write_json(args.out, {
        "preset": args.preset, "data": f"{args.preset} quick", "image_size": args.image_size,
        "checkpoint": args.checkpoint, "encoders": args.encoders, "runs": {k: v for k, v in runs.items()},
        "paths": PATHS, "cpus": os.cpu_count(), "load_average": {"start": load_start, "end": os.getloadavg()},
        "notes": args.notes, "rows": rows, "comparisons": comparisons, "rss_growth": growth,
        "rss_limit": RSS_LIMIT, "flat_memory": flat, "max_iou_diff": args.max_iou_diff, "labels_close": close})
    return 0 if flat and close else 1


if __name__ == "__main__":
    sys.exit(main())
