"""Review-page latency: time from a submitted answer to the next question on screen, with ``prompts=web`` on quick
synthetic rats (320x240), split into SAM-QA's own compute between the two questions (measured by the server: answer
accepted -> next question opened) and the rest (the page and HTTP: the POST, the long poll's reply, the frame's JPEG
encoded, fetched and drawn).

The person is played by headless Chromium (Debian's /usr/bin/chromium through Playwright): for each question the page
gets the frame's ground-truth boxes and Enter is pressed, as a person accepting boxes would; the page itself times
submit -> next question drawn (``performance.now``). ``--client http`` answers through the HTTP API without a browser
(the oracle, ``prompts.answer_by=oracle``). Without ``--checkpoint`` the SAM has random weights: nearly every frame
fails the checks, so nearly every frame is a question (the compute between questions is one frame's work).

    python scripts/bench_review.py --out outputs/bench_review.json [--frames 40] [--image-size 128]
        [--client browser|http] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from samqa_framework.utils.io import atomic_write_json

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _gt_boxes(seq: Any, frame: int) -> list[dict[str, Any]]:
    rows = seq.gt().rows_of(frame)
    return [{"id": int(i), "box": [round(float(v), 1) for v in b]}
            for i, b in zip(rows.track_id, rows.xyxy, strict=True)]


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
    return [{"frame": t["frame"], "total_s": t["submit_to_shown_ms"] / 1000} for t in timings]


def run(frames: int, image_size: int, client: str, checkpoint: str | None) -> dict[str, Any]:
    import torch
    from hydra.utils import instantiate

    from samqa_framework.annotate.runner import annotate_sequence
    from samqa_framework.api import compose
    from samqa_framework.data.sequence import Sequence

    torch.set_num_threads(2)
    torch.manual_seed(0)
    overrides = ["data=synthetic_rats", "data.size=quick", f"data.sizes.quick.train_frames={frames}",
                 "data.sizes.quick.eval_frames=[]", f"model.image_size={image_size}", "annotator=samqa",
                 "prompts=web", f"prompts.answer_by={'person' if client == 'browser' else 'oracle'}", "logger=csv"]
    if checkpoint:
        overrides.append(f"model.checkpoint={checkpoint}")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose("annotate", [*overrides, f"out_dir={tmp}/labels"], output_dir=tmp)
        manifest = instantiate(cfg.data, _convert_="all").build(Path(tmp) / "data")
        seq = Sequence(Path(tmp) / "data" / manifest.train[0])
        annotator = instantiate(cfg.annotator, _convert_="all")
        prompts = annotator.prompts
        outcome: dict[str, Any] = {}

        def annotate() -> None:
            try:
                outcome["result"] = annotate_sequence(annotator, seq, Path(tmp) / "labels", {}, progress=False,
                                                      num_animals=manifest.num_animals)
            except BaseException as exc:  # reported below, in the main thread
                outcome["error"] = exc

        t0 = time.perf_counter()
        worker = threading.Thread(target=annotate, daemon=True)
        worker.start()
        while not prompts.url and worker.is_alive():
            time.sleep(0.01)
        session = prompts.session
        if client == "browser":
            page = _drive_browser(f"{prompts.url}/?token={prompts.token}", seq, worker)
        else:
            oracle = prompts._client
            worker.join()
            page = [{"frame": t["frame"], "total_s": t["post_s"] + t["wait_s"]} for t in oracle.round_trips
                    if "wait_s" in t]
        worker.join()
        wall = time.perf_counter() - t0
        if "error" in outcome:
            raise outcome["error"]
        compute = {t["frame"]: t["compute_s"] for t in session.timings}
    rows = []
    last = None
    for t in sorted(page, key=lambda t: t["frame"]):
        if t["frame"] in compute:
            rows.append({"frame": t["frame"], "total_s": t["total_s"], "compute_s": compute[t["frame"]],
                         "page_http_s": t["total_s"] - compute[t["frame"]],
                         "frames_between": t["frame"] - last if last else None})
        last = t["frame"]
    return {"client": client, "frames": frames, "image_size": image_size, "checkpoint": checkpoint,
            "questions": len(rows) + 1, "interventions": outcome["result"].counts["interventions"],
            "wall_s": wall, "per_question": rows}


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = sorted(r[key] for r in rows)
    return {"median": statistics.median(values), "mean": statistics.fmean(values),
            "p90": values[min(len(values) - 1, int(0.9 * len(values)))], "max": values[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--client", choices=["browser", "http"], default="browser")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--target", type=float, default=0.5, help="seconds, submit -> next question (median)")
    args = parser.parse_args()
    report = run(args.frames, args.image_size, args.client, args.checkpoint)
    rows = report["per_question"]
    if not rows:
        raise SystemExit("fewer than two questions: nothing to time (use more --frames)")
    report["summary"] = {k: summary(rows, k) for k in ("total_s", "compute_s", "page_http_s")}
    report["target_s"] = args.target
    atomic_write_json(args.out, report)
    print(f"quick rats, {args.frames} frames, image_size {args.image_size}, client {args.client}, "
          f"{report['questions']} questions ({report['interventions']} interventions), {report['wall_s']:.1f} s")
    print("| submit -> next question | median | mean | p90 | max |\n| --- | ---: | ---: | ---: | ---: |")
    for key, name in [("total_s", "total"), ("compute_s", "SAM-QA compute between questions"),
                      ("page_http_s", "page + HTTP")]:
        s = report["summary"][key]
        print(f"| {name} | {s['median']:.3f} s | {s['mean']:.3f} s | {s['p90']:.3f} s | {s['max']:.3f} s |")
    verdict = "meets" if report["summary"]["total_s"]["median"] < args.target else "misses"
    print(f"median total {report['summary']['total_s']['median']:.3f} s {verdict} the {args.target} s target -> "
          f"{args.out}")


if __name__ == "__main__":
    main()
