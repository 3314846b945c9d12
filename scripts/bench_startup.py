"""Startup benchmark: wall time of ``--help`` and of one shell tab completion for every console script.

The commands are pyproject.toml's ``[project.scripts]``, run from the interpreter's bin folder (the venv's), each in
its own process as a shell would start it. A completion is what bash runs when TAB is pressed after
``samqa-<app> <group>=``: ``COMP_LINE=... COMP_POINT=... samqa-<app> -sc query=bash`` (Hydra's bash completion;
it lists the options of the group). The group is the first one of the app's primary config ``conf/<app>.yaml``
besides ``paths`` and ``hydra``; an app without such a config completes an empty word. Each time is the median of
``--repeat`` runs; the script fails (exit 1) when one is over ``--target`` seconds.

    python scripts/bench_startup.py --out outputs/bench_startup.json [--repeat 3] [--target 3] [--importtime 8]
                                    [--commands samqa-study ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INFRA_GROUPS = {"paths", "hydra"}


def console_scripts() -> list[str]:
    return list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def completion_line(script: str) -> str:
    """``<script> <group>=``: the first group of the app's primary config, or ``<script> `` (an empty word)."""
    primary = REPO / "conf" / f"{script.removeprefix('samqa-')}.yaml"
    defaults = (yaml.safe_load(primary.read_text()) or {}).get("defaults", []) if primary.is_file() else []
    groups = [next(iter(d)) for d in defaults if isinstance(d, dict)]
    group = next((g for g in groups if g not in INFRA_GROUPS and not g.startswith("override ")), None)
    return f"{script} {group}=" if group else f"{script} "


def median_run(cmd: list[str], env: dict[str, str], repeat: int, what: str) -> tuple[dict[str, float | list], str]:
    """Median wall time of ``repeat`` runs, and their median CPU time (user + system: less sensitive to other work
    on the machine than the wall time, which is what a user waits)."""
    walls, cpus, out = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=600)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{what} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        out = proc.stdout
    return {"s": statistics.median(walls), "runs_s": walls, "cpu_s": statistics.median(cpus)}, out


def slowest_imports(cmd: list[str], env: dict[str, str], top: int) -> list[tuple[str, float]]:
    """The ``top`` slowest packages to import (``python -X importtime``'s cumulative time where each top-level
    package is first imported; a package imported by another is counted in both)."""
    proc = subprocess.run(cmd, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True,
                          check=False, timeout=600)
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if "." not in name and name != "samqa_framework":
            rows.append((name, int(parts[1]) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--target", type=float, default=3.0, help="seconds")
    ap.add_argument("--commands", nargs="+", metavar="NAME", help="only these (default: every console script)")
    ap.add_argument("--importtime", type=int, default=0, metavar="N",
                    help="also list the N slowest top-level imports of each --help")
    args = ap.parse_args()

    # As a user's shell runs them; the offline defaults keep a library from reaching the network at import.
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"), "HF_HUB_OFFLINE": "1",
           "YOLO_OFFLINE": "1"}
    load_before = os.getloadavg()[0]  # other work on the machine inflates every figure: recorded with them
    floor, _ = median_run([sys.executable, "-c", "pass"], env, args.repeat, "python")
    rows = []
    for script in args.commands or console_scripts():
        exe = str(BIN / script)
        help_t, _ = median_run([exe, "--help"], env, args.repeat, f"{script} --help")
        line = completion_line(script)
        comp_env = {**env, "COMP_LINE": line, "COMP_POINT": str(len(line))}
        comp_t, out = median_run([exe, "-sc", "query=bash"], comp_env, args.repeat, f"completion {line!r}")
        candidates = out.split()
        if not candidates:
            raise SystemExit(f"completion {line!r} offered nothing")
        row = {"command": script, "help": help_t, "completion_line": line, "completion": comp_t,
               "completion_candidates": len(candidates), "ok": max(help_t["s"], comp_t["s"]) <= args.target}
        if args.importtime:
            row["slowest_imports_s"] = slowest_imports([exe, "--help"], env, args.importtime)
        rows.append(row)
        print(f"{script:<16} --help {help_t['s']:6.2f} s   complete {line!r:<28} {comp_t['s']:6.2f} s "
              f"({len(candidates)} candidates)", flush=True)

    mark = {True: "yes", False: "NO"}
    load = (load_before, os.getloadavg()[0])
    print(f"\nmedian of {args.repeat} runs; target <= {args.target:g} s; python -c pass {floor['s']:.2f} s; "
          f"load average {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} CPUs\n")
    print(f"| command | --help (s) | tab completion (s) | <= {args.target:g} s | CPU time --help / completion (s) |")
    print("|---|---:|---:|:---:|---:|")
    for r in rows:
        print(f"| {r['command']} | {r['help']['s']:.2f} | {r['completion']['s']:.2f} | {mark[r['ok']]} "
              f"| {r['help']['cpu_s']:.2f} / {r['completion']['cpu_s']:.2f} |")
    for r in rows:
        if r.get("slowest_imports_s"):
            print(f"\n{r['command']} --help, slowest imports (cumulative s): "
                  + ", ".join(f"{name} {s:.2f}" for name, s in r["slowest_imports_s"]))

    report = {"target_s": args.target, "repeat": args.repeat, "python_startup_s": floor["s"],
              "python": sys.version.split()[0], "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average": load, "commands": rows, "ok": all(r["ok"] for r in rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
