"""Training-stage benchmark: seconds per optimiser step of each stage the quick study trains, paths side by side.

Each run is ``samqa-train`` in its own process on quick synthetic_rats (built once, before the runs), ``--steps``
steps without validation, timed step by step (``models.lit.callbacks.StepTimes``); the first ``--warmup`` steps are
left out of the median. Pairs compare one change at a time on the same stage:

- ``extras.malloc``: ``system`` (glibc's defaults) against ``reuse`` (the default);
- the student's frames decoded from the video on every sample against the frame cache (``data/frame_cache.py``);
- distillation with the teacher (ViT-B) run every step against its cached embeddings (``cache_teacher``); the
  cache is filled once before the runs and its fill time reported.

    python scripts/bench_train.py --out docs/bench_train.json [--steps 16] [--only student unet ...]
    python scripts/bench_train.py --out FILE.json --only distill --distill-size 1024 --distill-every 50
        --distill-batch 2 --steps 6 --warmup 1     # at the paper's distillation size (experiment=paper_rats)

The distillation pair's ratio is 1 + (teacher forward) / (student step): it grows with the input size, where
ViT-B's cost grows faster than the student's (``scripts/bench_encoders.py``), so it is measured at the size the
distillation runs at (``--distill-size``; the paper's SAM input is 1024 px) as well as at the quick study's 320.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from samqa_framework.utils.io import atomic_write_json

STUDENT = ["stage=finetune", "model.image_size=320"]  # conf/study.yaml's student


def distill_overrides(size: int = 320, every: int = 10, batch: int | None = None) -> list[str]:
    """The distillation stage at ``size`` px on every ``every``-th training frame (the teacher's cache holds each
    frame and its flip: at 320 px and every 10th it fills in about a minute)."""
    return ["stage=distill", f"model.image_size={size}", f"stage.datamodule.every={every}",
            *([f"stage.datamodule.batch_size={batch}"] if batch else [])]


DISTILL = distill_overrides()
# name -> (stage overrides, the run it is compared with, what changes)
RUNS: dict[str, tuple[list[str], str | None, str]] = {
    "student:system": ([*STUDENT, "extras.malloc=system"], None, "glibc's malloc defaults"),
    "student": (STUDENT, "student:system", "extras.malloc=reuse"),
    "student:video": ([*STUDENT, "stage.datamodule.frame_cache_dir=null"], "student",
                      "frames decoded from the video (no frame cache)"),
    "unet:system": (["stage=segmentation", "model=unet", "extras.malloc=system"], None, "glibc's malloc defaults"),
    "unet": (["stage=segmentation", "model=unet"], "unet:system", "extras.malloc=reuse"),
    "deeplabv3:system": (["stage=segmentation", "model=deeplabv3", "extras.malloc=system"], None,
                         "glibc's malloc defaults"),
    "deeplabv3": (["stage=segmentation", "model=deeplabv3"], "deeplabv3:system", "extras.malloc=reuse"),
    "distill:teacher": ([*DISTILL, "stage.module.cache_teacher=false"], None, "the teacher run every step"),
    "distill": (DISTILL, "distill:teacher", "cached teacher embeddings"),
}
GROUPS = ("student", "unet", "deeplabv3", "distill")


def train(overrides: list[str], work: Path, name: str, steps: int) -> dict:
    """One samqa-train process (``steps`` -1: one epoch); returns its step times and wall time."""
    out = work / name.replace(":", "_")
    times = out / "step_times.json"
    cmd = [str(Path(sys.executable).parent / "samqa-train"), "data=synthetic_rats", "data.size=quick", *overrides,
           f"trainer.max_epochs={1 if steps < 0 else -1}", "trainer.min_epochs=null", f"++trainer.max_steps={steps}",
           "++trainer.limit_val_batches=0", "final_validate=false", "logger=csv", f"paths.output_dir={out}",
           f"paths.frame_cache_dir={work / 'frames'}", "callbacks.progress_bar=null",
           "+callbacks.step_times._target_=samqa_framework.models.lit.callbacks.StepTimes",
           f"+callbacks.step_times.path={times}"]
    if "stage=distill" in overrides:  # the teacher's embeddings beside the frames, not in the checkout's data folder
        cmd.append(f"stage.module.cache_dir={work / 'teacher'}")
    load, t0 = os.getloadavg()[0], time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not times.is_file():
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{name}: samqa-train failed (exit {proc.returncode})")
    rows = json.loads(times.read_text())
    return {"overrides": overrides, "wall_s": wall, "loadavg_1m_before": load, "loadavg_1m_after": os.getloadavg()[0],
            **rows}


def summary(r: dict, warmup: int) -> dict:
    steady = r["seconds"][warmup:] or r["seconds"]
    return {"median_s": statistics.median(steady), "first_s": r["seconds"][0],
            "kernel_s": statistics.median(r["kernel_seconds"][warmup:] or r["kernel_seconds"]),
            "page_faults": statistics.median(r["page_faults"][warmup:] or r["page_faults"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--distill-size", type=int, default=320, help="the distillation pair's input size (px)")
    parser.add_argument("--distill-every", type=int, default=10, help="... on every N-th training frame")
    parser.add_argument("--distill-batch", type=int, default=None, help="... frames per step (default: the stage's)")
    args = parser.parse_args()
    distill = distill_overrides(args.distill_size, args.distill_every, args.distill_batch)
    RUNS["distill:teacher"] = ([*distill, "stage.module.cache_teacher=false"], *RUNS["distill:teacher"][1:])
    RUNS["distill"] = (distill, *RUNS["distill"][1:])
    names = [n for n in RUNS if n.split(":")[0] in args.only]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        # the data set, the frame cache and the teacher's embeddings, built once and left out of the timings
        prep = {"student": STUDENT, "distill": distill}
        for group, overrides in prep.items():
            if group in args.only:
                t0 = time.perf_counter()
                # the teacher's cache fills during the first epoch (each frame and its flip): one whole epoch
                train(overrides, work, f"prepare_{group}", -1 if group == "distill" else 1)
                results[f"prepare:{group}"] = {"wall_s": time.perf_counter() - t0}
        for name in names:
            print(f"{name} ...", flush=True)
            results[name] = train(RUNS[name][0], work, name, args.steps)
            results[name].update(summary(results[name], args.warmup))
    table = []
    for name in names:
        r, (_, base, change) = results[name], RUNS[name]
        ratio = f"{results[base]['median_s'] / r['median_s']:.2f}x vs {base}" if base in results else "-"
        table.append([name, change, f"{r['median_s']:.2f}", f"{r['first_s']:.2f}", f"{r['kernel_s']:.2f}",
                      f"{r['page_faults']:,.0f}", ratio, f"{r['loadavg_1m_before']:.2f}"])
    print(tabulate(table, headers=["run", "what", "s / step (median)", "first step s", "kernel s / step",
                                   "page faults / step", "speed-up", "load (1 min)"], tablefmt="github"))
    atomic_write_json(args.out, {"steps": args.steps, "warmup": args.warmup, "cpus": os.cpu_count(),
                                 "distill": distill, "runs": results})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
