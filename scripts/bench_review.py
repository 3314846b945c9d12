"""Review-page latency, side by side in one run: how long a person waits from submitting an answer to seeing the next
question, with ``prompts=web`` and with ``prompts=queue`` (the file queue it replaces), on the same quick synthetic
rats (320x240), model and settings.

- web: ``samqa-annotate``'s page in this process (``annotate_sequence`` with ``WebPrompts``), split into SAM-QA's own
  compute between the two questions (measured by the server: answer accepted -> next question opened) and the rest
  (the page and HTTP: the POST, the long poll's reply, the frame's JPEG encoded, fetched and drawn). The person is
  headless Chromium (Debian's /usr/bin/chromium through Playwright): for each question the page gets the frame's
  ground-truth boxes and Enter is pressed, as a person accepting boxes would; the page itself times submit -> next
  question drawn (``performance.now``). ``--client http`` answers through the HTTP API without a browser (the oracle,
  ``prompts.answer_by=oracle``).
- queue: the real ``samqa-annotate ... prompts=queue`` in its own process, as a person runs it: it exits with status 3
  at a frame that needs boxes; the ground-truth boxes of that frame are written to ``answers.json`` and the same command
  is run again. The wait is from the answer written to the next exit 3 (or the run's end): process start, config,
  model load, resume and the frames up to the next question. Only the first ``--queue-questions`` answers are timed
  (each costs a process start).

Without ``--checkpoint`` the SAM has random weights: nearly every frame fails the checks, so nearly every frame is a
question (the compute between questions is one frame's work). A trained student asks rarely; ``--override`` adds
Hydra overrides to both paths (e.g. a tight ``qa.size_ratio`` so that questions come often). The machine's load average
is recorded at the start and the end (other jobs on the CPU slow both paths).

    python scripts/bench_review.py --out outputs/bench_review.json [--frames 40] [--image-size 128]
        [--client browser|http] [--checkpoint FILE] [--queue-questions 3] [--override qa.size_ratio=[0.9,1.1]]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samqa_framework.utils.io import atomic_write_json

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
QUEUE_STOP = 3  # PromptsNeeded.exit_code: the run stopped at a frame that needs a person


def _gt_boxes(seq: Any, frame: int) -> list[dict[str, Any]]:
    rows = seq.gt().rows_of(frame)
    return [{"id": int(i), "box": [round(float(v), 1) for v in b]}
            for i, b in zip(rows.track_id, rows.xyxy, strict=True)]


def base_overrides(frames: int, image_size: int, checkpoint: str | None, extra: Sequence[str]) -> list[str]:
    """What both paths run with (the data set, model and QA settings); each path adds its ``prompts``."""
    overrides = ["data=synthetic_rats", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                 "data.sizes.quick.eval_frames=[]", f"model.image_size={image_size}", "annotator=samqa", "logger=csv",
                 "progress=false"]
    if checkpoint:
        overrides.append(f"model.checkpoint={checkpoint}")
    return [*overrides, *extra]


def _drive_browser(url: str, seq: Any, worker: threading.Thread) -> list[dict[str, float]]:
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        answered = 0
        while worker.is_alive():
            try:  # a question is on screen once the page has drawn it and says so
                page.wait_for_function("n => window.samqa.frame > n && window.samqa.submitAt === 0 && "
                                       "document.getElementById('status').textContent.startsWith('frame ')",
                                       arg=answered, timeout=2000)
            except PageTimeout:  # no question yet: the run may have finished
                continue
            frame = page.evaluate("window.samqa.frame")
            page.evaluate("b => { window.samqa.boxes = b; }", _gt_boxes(seq, frame))
            page.keyboard.press("Enter")
            answered = frame
        timings = page.evaluate("window.samqa.timings")
        browser.close()
    # each timing belongs to the question it ends at (the frame shown after the submit)
    return [{"frame": t["frame"], "total_s": t["submit_to_shown_ms"] / 1000} for t in timings]


def build_data(overrides: list[str], data_dir: Path, tmp: Path) -> Any:
    """The quick rats both paths read (``paths.dataset_dir``): built once, found again by the CLI (same build hash)."""
    from hydra.utils import instantiate

    from samqa_framework.api import compose

    cfg = compose("annotate", overrides, output_dir=tmp / "compose")
    return instantiate(cfg.data, _convert_="all").build(data_dir)


def web_path(overrides: list[str], data_dir: Path, tmp: Path, client: str) -> dict[str, Any]:
    """``prompts=web`` in this process, answered by the browser (or the HTTP oracle): one row per timed question."""
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything

    from samqa_framework.annotate.runner import annotate_sequence
    from samqa_framework.annotate.store import LabelStore
    from samqa_framework.api import compose
    from samqa_framework.data.sequence import DatasetManifest

    cfg = compose("annotate", [*overrides, "prompts=web",
                               f"prompts.answer_by={'person' if client == 'browser' else 'oracle'}",
                               f"paths.dataset_dir={data_dir}", f"out_dir={tmp}/web_labels"], output_dir=tmp / "web")
    manifest = DatasetManifest.read(data_dir)
    seq = manifest.sequences(data_dir, "train")[0]
    seed_everything(int(cfg.seed), verbose=False)  # as the annotate task seeds before it builds the annotator
    annotator = instantiate(cfg.annotator, _convert_="all")
    prompts = annotator.prompts
    outcome: dict[str, Any] = {}

    def annotate() -> None:
        try:
            outcome["result"] = annotate_sequence(annotator, seq, tmp / "web_labels" / seq.name, {}, progress=False,
                                                  num_animals=manifest.num_animals)
        except BaseException as exc:  # reported below, in the main thread
            outcome["error"] = exc

    t0 = time.perf_counter()
    worker = threading.Thread(target=annotate, daemon=True)
    worker.start()
    # the page serves first, then the oracle's client starts (both are let go when the run ends: kept here)
    while (not prompts.url or (client == "http" and prompts._client is None)) and worker.is_alive():
        time.sleep(0.01)
    session, oracle = prompts.session, prompts._client
    if client == "browser":
        page = _drive_browser(f"{prompts.url}/?token={prompts.token}", seq, worker)
    worker.join()
    wall = time.perf_counter() - t0
    if "error" in outcome:
        raise outcome["error"]
    if client == "http":
        # a round trip is named by the frame answered; its wait ends at the next one's question
        trips = oracle.round_trips
        page = [{"frame": nxt["frame"], "total_s": t["post_s"] + t["wait_s"]}
                for t, nxt in itertools.pairwise(trips) if "wait_s" in t]
    compute = {t["frame"]: t["compute_s"] for t in session.timings}
    asked = sorted(LabelStore.read(tmp / "web_labels" / seq.name).answers())  # every question, the first one too
    rows = []
    for t in sorted(page, key=lambda t: t["frame"]):
        if t["frame"] in compute:
            before = [f for f in asked if f < t["frame"]]
            rows.append({"frame": t["frame"], "total_s": t["total_s"], "compute_s": compute[t["frame"]],
                         "page_http_s": t["total_s"] - compute[t["frame"]],
                         "frames_between": t["frame"] - before[-1] if before else None})
    return {"client": client, "questions": len(asked), "asked": asked,
            "interventions": outcome["result"].counts["interventions"], "wall_s": wall, "per_question": rows}


def _annotate_command() -> list[str]:
    script = Path(sys.executable).parent / "samqa-annotate"  # the console script a person runs
    return [str(script)] if script.is_file() else [sys.executable, "-m", "samqa_framework.cli.annotate"]


def queue_path(overrides: list[str], data_dir: Path, tmp: Path, questions: int, timeout: float) -> dict[str, Any]:
    """``samqa-annotate ... prompts=queue`` run again after each answer, as a person does; the first ``questions``
    answers are timed (answer written -> the next stop or the end)."""
    from samqa_framework.data.sequence import DatasetManifest

    out = tmp / "queue_labels"
    command = [*_annotate_command(), *overrides, "prompts=queue", f"paths.dataset_dir={data_dir}", f"out_dir={out}"]
    env = {**os.environ, "SAMQA_ROOT": str(tmp / "queue_root"), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    seq = DatasetManifest.read(data_dir).sequences(data_dir, "train")[0]
    queue = out / "queue" / seq.name  # conf/prompts/queue.yaml: ${out_dir}/queue, one folder per sequence

    def run_once() -> tuple[int | None, float]:
        """Run the command; the frame it stopped at (None: it finished) and its wall time."""
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout,
                              check=False)
        wall = time.perf_counter() - t0
        if done.returncode == 0:
            return None, wall
        if done.returncode != QUEUE_STOP:
            raise SystemExit(f"samqa-annotate prompts=queue failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return int(json.loads((queue / "requests.json").read_text(encoding="utf-8"))["frame"]), wall

    frame, first_stop = run_once()
    if frame is None:
        raise SystemExit("the queue path asked no question: nothing to time")
    answers: dict[str, list[dict[str, Any]]] = {}
    rows = []
    while frame is not None and len(rows) < questions:
        answers[str(frame)] = _gt_boxes(seq, frame)  # the format _parse_answers reads: {"<frame>": [{id, box}]}
        atomic_write_json(queue / "answers.json", answers)  # the timer starts once the answer is on disk
        nxt, wait = run_once()
        rows.append({"answered": frame, "frame": nxt, "wait_s": wait,
                     "frames_between": (nxt or seq.info.seq_length + 1) - frame})
        frame = nxt
    return {"command": [c.replace(str(tmp), "<tmp>") for c in command], "first_stop_s": first_stop,
            "finished": frame is None, "per_question": rows}


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = sorted(r[key] for r in rows)
    return {"median": statistics.median(values), "mean": statistics.fmean(values),
            "p90": values[min(len(values) - 1, int(0.9 * len(values)))], "max": values[-1]}


def run(frames: int, image_size: int, client: str, checkpoint: str | None, queue_questions: int,
        extra: Sequence[str], queue_timeout: float) -> dict[str, Any]:
    """Both paths on one data set with one model and settings; the report before its summaries."""
    import torch

    torch.set_num_threads(2)  # as the CLI on this 2-core machine (torch's default there)
    overrides = base_overrides(frames, image_size, checkpoint, extra)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_data(overrides, tmp / "data", tmp)
        web = web_path(overrides, tmp / "data", tmp, client)
        if not web["per_question"]:  # before the queue path's minutes of process starts
            raise SystemExit(f"{web['questions']} question(s) on the web path: nothing to time (use more --frames, "
                             f"or --override settings that ask more often)")
        queue = queue_path(overrides, tmp / "data", tmp, queue_questions, queue_timeout)
    return {"data": "synthetic_rats quick (320x240)", "frames": frames, "image_size": image_size,
            "checkpoint": checkpoint, "overrides": overrides, "extra_overrides": list(extra), "cpus": os.cpu_count(),
            "load_average": {"start": list(load_start), "end": list(os.getloadavg())}, "web": web, "queue": queue}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--client", choices=["browser", "http"], default="browser")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--queue-questions", type=int, default=3, help="answers timed on the queue path")
    parser.add_argument("--queue-timeout", type=float, default=300, help="seconds, one samqa-annotate run")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override for both paths")
    parser.add_argument("--notes", default="", help="why these settings (kept in the report)")
    parser.add_argument("--target", type=float, default=0.5, help="seconds, submit -> next question (median)")
    args = parser.parse_args()
    if args.queue_questions < 1:
        parser.error("--queue-questions must be at least 1")
    report = run(args.frames, args.image_size, args.client, args.checkpoint, args.queue_questions, args.override,
                 args.queue_timeout)
    web, queue = report["web"], report["queue"]
    web["summary"] = {k: summary(web["per_question"], k) for k in ("total_s", "compute_s", "page_http_s")}
    queue["summary"] = {"wait_s": summary(queue["per_question"], "wait_s")}
    w, q = web["summary"]["total_s"], queue["summary"]["wait_s"]
    report["ratio_queue_to_web"] = {"median": q["median"] / w["median"], "p90": q["p90"] / w["p90"]}
    # same data, model and settings: the queue path must stop at the frames the page asked about
    report["queue_asked_as_web"] = all(r["frame"] in web["asked"] for r in queue["per_question"] if r["frame"])
    report["target_s"] = args.target
    report["meets_target"] = w["median"] < args.target
    report["notes"] = args.notes
    atomic_write_json(args.out, report)
    load = report["load_average"]
    print(f"quick rats, {args.frames} frames, image_size {args.image_size}, load average {load['start'][0]:.2f} -> "
          f"{load['end'][0]:.2f} on {report['cpus']} CPUs")
    print("| submit -> next question | median | p90 | questions timed | queue / web (median) |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    print(f"| web ({args.client}) | {w['median']:.3f} s | {w['p90']:.3f} s | {len(web['per_question'])} | 1 |")
    print(f"| queue (process per answer) | {q['median']:.3f} s | {q['p90']:.3f} s | {len(queue['per_question'])} | "
          f"{report['ratio_queue_to_web']['median']:.1f} |")
    c, p = web["summary"]["compute_s"], web["summary"]["page_http_s"]
    print(f"web split (median): SAM-QA compute {c['median']:.3f} s, page + HTTP {p['median']:.3f} s")
    verdict = "meets" if report["meets_target"] else "misses"
    print(f"web median {w['median']:.3f} s {verdict} the {args.target} s target -> {args.out}")


if __name__ == "__main__":
    main()
