"""How much of a study row's IDF1 hangs on the size of its detector's boxes: re-track the job's cached detections
with every box scaled about its centre, with the job's own tracker settings, and score them again.

    python scripts/box_scale_check.py --run outputs/study/multirun/<run> --method SAM-QA --data synthetic_mice \
        --dataset-dir data/synthetic_mice-quick --scales 0.95 1 1.05 [--variant robust] [--out FILE.json]

Scale 1 gives the row's own figures back (a check that the re-tracking is the study's). Used to ask whether labels
with tighter boxes explain a lower IDF1: if scaling the boxes by a few percent moves a seed's IDF1 by more than the
gap between two label sets, the gap rests on a few identity swaps, not on the box fit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from samqa_framework.data.mot import MotTable, read_mot, write_mot
from samqa_framework.data.sequence import SeqInfo
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_dirs
from samqa_framework.track.bytetrack import ByteTrack, frames_of
from samqa_framework.utils.io import atomic_write_json

FIGURES = ("IDF1", "HOTA", "AssA", "DetA", "IDSW")


def scaled(table: MotTable, scale: float) -> MotTable:
    """The detections with every box's width and height times ``scale``, centres kept."""
    centre = table.box[:, :2] + table.box[:, 2:] / 2
    size = table.box[:, 2:] * scale
    return MotTable(table.frame, table.track_id, np.hstack([centre - size / 2, size]), table.conf, table.cls)


def tracker_of(track_dir: Path, variant: str) -> ByteTrack:
    """The tracker a study's track stage used for ``variant`` (its saved ``tracker.yaml``; plain YAML data)."""
    path = track_dir / variant / "tracker.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: no such tracker variant in the job's track stage")
    settings = yaml.safe_load(path.read_text(encoding="utf-8"))
    settings.pop("tracker_type", None)
    return ByteTrack.from_config(**settings)


def retrack(detect_dir: Path, tracker: ByteTrack, dataset_dir: Path, scale: float) -> dict[str, float]:
    """Every evaluation sequence's detections (``<seq>.txt`` in the detect stage) scaled, tracked and scored."""
    seqs = sorted(p.stem for p in detect_dir.glob("*.txt"))
    with tempfile.TemporaryDirectory() as tmp:
        for seq in seqs:
            info = SeqInfo.read(dataset_dir / seq / "seqinfo.ini")
            dets = scaled(read_mot(detect_dir / f"{seq}.txt", num_frames=info.seq_length), scale)
            tracks = tracker.track(frames_of(dets, info.seq_length), (info.width, info.height))
            write_mot(Path(tmp) / f"{seq}.txt", tracks, columns=10)
        result = evaluate_dirs(dataset_dir, tmp, sequences=seqs)[COMBINED]
    return {k: float(result[k]) for k in FIGURES}


def job_stages(run: Path, method: str, data: str) -> Mapping[str, Mapping[str, Any]]:
    """The stages (name -> cache folder etc.) of the run's job for ``method`` on ``data`` (its ``runs.json``)."""
    path = run / "runs.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: cannot read the run's jobs ({type(exc).__name__}: {exc})") from None
    jobs = [r for r in rows if isinstance(r, dict) and r.get("method") == method and r.get("dataset") == data]
    if len(jobs) != 1:
        raise SystemExit(f"{run / 'runs.json'}: {len(jobs)} jobs of method {method!r} on {data!r} (need one)")
    return jobs[0]["stages"]


def check(run: Path, method: str, data: str, dataset_dir: Path, scales: Sequence[float],
          variant: str = "robust") -> dict[str, Any]:
    """Each detector seed's figures at each scale, and their mean over the seeds."""
    stages = job_stages(run, method, data)
    seeds = sorted(name[len("detect[seed="):-1] for name in stages if name.startswith("detect[seed="))
    pairs = [(f"detect[seed={s}]", f"track[seed={s}]") for s in seeds] or [("detect", "track")]
    out: dict[str, Any] = {"run": str(run), "method": method, "data": data, "variant": variant, "scales": {}}
    # each seed's detections and tracker, read once for every scale
    jobs = {seed: (Path(stages[det]["dir"]), tracker_of(Path(stages[trk]["dir"]), variant))
            for (det, trk), seed in zip(pairs, seeds or ["-"], strict=True)}
    for scale in scales:
        per_seed = {seed: retrack(detect_dir, tracker, dataset_dir, scale)
                    for seed, (detect_dir, tracker) in jobs.items()}
        mean = {k: float(np.mean([f[k] for f in per_seed.values()])) for k in FIGURES}
        out["scales"][f"{scale:g}"] = {"per_seed": per_seed, "mean": mean}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a samqa-study run or multirun folder (its runs.json)")
    ap.add_argument("--method", required=True, help="the row's method, e.g. SAM-QA or 'Manual annotation'")
    ap.add_argument("--data", required=True, help="the row's data set, e.g. synthetic_mice")
    ap.add_argument("--dataset-dir", type=Path, required=True, help="its MOT folder (gt and seqinfo.ini)")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.95, 1.0, 1.05])
    ap.add_argument("--variant", default="robust", help="the tracker variant (study.tracker_variants)")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = ap.parse_args(argv)
    if any(s <= 0 for s in args.scales):
        raise SystemExit("--scales: every scale must be > 0")
    report = check(args.run, args.method, args.data, args.dataset_dir, args.scales, args.variant)
    for scale, fig in report["scales"].items():
        seeds = " / ".join(f"{f['IDF1']:.1f}" for f in fig["per_seed"].values())
        switches = " / ".join(f"{f['IDSW']:.0f}" for f in fig["per_seed"].values())
        print(f"scale {scale}: IDF1 {fig['mean']['IDF1']:.1f} (seeds {seeds}), identity switches {switches}, "
              f"AssA {fig['mean']['AssA']:.1f}, DetA {fig['mean']['DetA']:.1f}")
    if args.out:
        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
