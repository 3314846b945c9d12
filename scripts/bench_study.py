"""Quick-study benchmark: wall time of each stage, summed over the jobs (each stage once), and its share of the whole.

Runs ``samqa-study -m`` (the quick study on synthetic_rats: every method of study.yaml's sweep) in its own process
with a fresh stage cache, so every stage really runs, then reads the jobs' rows. ``--from DIR`` reads a finished
multirun's folder instead (the folder ``samqa-study`` prints last), e.g. the run that produced README's table.

    python scripts/bench_study.py --out outputs/bench_study.json [--from outputs/study/multirun/<ts>] [-- OVERRIDES]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from samqa_framework.study.report import collect_rows
from samqa_framework.utils.io import atomic_write_json


def run_study(overrides: list[str]) -> tuple[Path, float]:
    """The study in a child process with a fresh cache; returns its results folder and its wall time."""
    cache = tempfile.mkdtemp(prefix="bench_study_cache_")
    cmd = [str(Path(sys.executable).parent / "samqa-study"), "-m", f"study.cache_dir={cache}", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    sys.stdout.write(proc.stdout[-4000:])
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if not last.startswith("results: "):
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"samqa-study did not finish (exit {proc.returncode})")
    return Path(last[len("results: "):]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--from", dest="from_dir", type=Path, help="a finished multirun folder to read")
    parser.add_argument("overrides", nargs="*", help="samqa-study overrides (after --)")
    args = parser.parse_args()
    root, wall = (args.from_dir, None) if args.from_dir else run_study(args.overrides)
    rows = collect_rows(root)
    # Each stage counted once, with the time it took when it ran (a model shared by two methods, or a stage cached
    # from an earlier run of the same config, is not counted twice): the cost of the study from scratch.
    per_stage: dict[str, float] = {}
    seen: set[str] = set()
    per_job = []
    for r in rows:
        stages = r.get("stages") or {}
        per_job.append({"method": r["method"], "dataset": r["dataset"], "status": r["status"],
                        "wall_s": r.get("wall_s"), "stages": stages})
        for name, st in stages.items():
            if st["dir"] in seen:
                continue
            seen.add(st["dir"])
            kind = "train models" if name.startswith("train_") else name
            per_stage[kind] = per_stage.get(kind, 0.0) + st["wall_s"]
    total = sum(per_stage.values())
    table = [[name, f"{s:.0f}", f"{s / 60:.1f}", f"{100 * s / max(total, 1e-9):.0f}%"]
             for name, s in sorted(per_stage.items(), key=lambda kv: -kv[1])]
    print(tabulate(table, headers=["stage", "seconds", "minutes", "share"], tablefmt="github"))
    print(f"\nstages total {total / 60:.1f} min" + (f", process wall {wall / 60:.1f} min" if wall else ""))
    atomic_write_json(args.out, {"results_dir": str(root), "stage_seconds": per_stage, "stages_total_s": total,
                                 "process_wall_s": wall, "jobs": per_job})
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
