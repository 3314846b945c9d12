"""The review page in a real browser (headless Chromium through Playwright): a person draws boxes with the mouse and
annotation goes on in the same process; after the run, identities are swapped from a frame on and a box is fixed, and
the store, the label files and the exported MOT file follow. Screenshots go to the test's tmp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from samqa_framework.annotate.export import export
from samqa_framework.annotate.review.task import open_review
from samqa_framework.annotate.store import CORRECTIONS, LabelStore
from samqa_framework.data.mot import read_mot
from samqa_framework.data.sequence import Sequence
from tests.annotate.review.helpers import LiveRun, gt_answer


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> tuple[list[float], list[float]]:
    """A mouse drag between two points given in image pixels. Mouse events carry whole CSS pixels, so the points are
    rounded to the screen's pixels; returns them in image pixels, as the page computes them."""
    box = page.locator("#frame").bounding_box()
    scale = page.evaluate("window.samqa.scale")
    screen = [(round(box["x"] + x * scale), round(box["y"] + y * scale)) for x, y in (start, end)]
    page.mouse.move(*screen[0])
    page.mouse.down()
    page.mouse.move((screen[0][0] + screen[1][0]) / 2, (screen[0][1] + screen[1][1]) / 2, steps=3)
    page.mouse.move(*screen[1], steps=3)
    page.mouse.up()
    return [[(sx - box["x"]) / scale, (sy - box["y"]) / scale] for sx, sy in screen]


def _draw_answer(page: Any, seq: Sequence, frame: int) -> dict[int, list[float]]:
    """Each ground-truth box of ``frame`` drawn with the mouse, then its identity's key pressed (the new box is the
    selected one); returns the boxes the page should submit (it keeps one decimal)."""
    drawn = {}
    for item in sorted(gt_answer(seq, frame), key=lambda i: -i["id"]):  # the last id first: the keys must matter
        x1, y1, x2, y2 = item["box"]
        (a, b), (c, d) = _drag(page, (x1, y1), (x2, y2))
        page.keyboard.press(str(item["id"]))
        drawn[item["id"]] = [round(v, 1) for v in (a, b, c, d)]
    return drawn


def _status(page: Any, text: str) -> None:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text)


def test_a_person_draws_boxes_submits_and_annotation_goes_on(seq: Sequence, tmp_path: Path, page: Any) -> None:
    run = LiveRun(seq, tmp_path / "labels", {5: "empty"})
    url = run.start()
    page.goto(f"{url}/?token={run.prompts.token}")
    _status(page, "frame 1:")
    assert "frame 1 needs you" in page.inner_text("#title") and page.evaluate("window.samqa.boxes.length") == 0
    drawn = _draw_answer(page, seq, 1)
    page.screenshot(path=str(tmp_path / "question_frame1.png"))
    page.keyboard.press("Enter")
    _status(page, "frame 5:")  # the same process went on and asks about the frame where both animals were lost
    assert "failed checks: id 1: empty; id 2: empty" in page.inner_text("#why")
    assert page.evaluate("window.samqa.boxes") == []
    page.keyboard.press("c")  # the previous frame's labels as a start
    previous = page.evaluate("window.samqa.previous")
    assert page.evaluate("window.samqa.boxes") == [{"id": p["id"], "box": p["box"]} for p in previous]
    page.screenshot(path=str(tmp_path / "question_frame5.png"))
    for box in [p["box"] for p in previous]:  # a click selects a box, Delete removes it
        _drag(page, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        page.keyboard.press("Delete")
    assert page.evaluate("window.samqa.boxes") == []
    drawn5 = _draw_answer(page, seq, 5)
    page.keyboard.press("Enter")
    result = run.join()
    assert result.frames == 40 and result.counts["interventions"] == 2
    store = LabelStore.read(tmp_path / "labels")
    first = store.record(1)
    assert {i.track_id: i.source for i in first.instances} == {1: "manual", 2: "manual"}
    for inst in first.instances:
        np.testing.assert_allclose(inst.box, drawn[inst.track_id], atol=0.051)
    for inst in store.record(5).instances:
        np.testing.assert_allclose(inst.box, drawn5[inst.track_id], atol=0.051)
    timings = page.evaluate("window.samqa.timings")
    assert [t["frame"] for t in timings] == [5] and timings[0]["submit_to_shown_ms"] > 0


def test_swap_identities_and_fix_a_box_after_the_run(seq: Sequence, tmp_path: Path, page: Any,
                                                       compose_cfg: Any) -> None:
    labels = tmp_path / "labels" / seq.name
    run = LiveRun(seq, labels, {5: "empty"}, answer_by="oracle")
    run.start()
    run.join()
    raw = {r.frame: r.by_id() for r in LabelStore.read(labels).records()}
    assert len(raw) == 40
    session, server, url = open_review(labels)
    try:
        refused = page.goto(url.split("?")[0])
        assert refused.status == 403 and "token" in page.inner_text("body")
        page.goto(url)
        _status(page, "click the timeline")
        page.fill("#jump", "12")
        page.click("#go")
        page.wait_for_function("() => window.samqa.frame === 12")
        page.fill("#swap-a", "1")
        page.fill("#swap-b", "2")
        page.click("#swap")
        _status(page, "swapped from frame 12")
        before = page.evaluate("window.samqa.boxes.find(b => b.id === 1).box")
        centre = ((before[0] + before[2]) / 2, (before[1] + before[3]) / 2)
        page.locator("#frame").focus()
        start, end = _drag(page, centre, (centre[0] + 4, centre[1] + 3))  # move id 1's box by about (4, 3) pixels
        dx, dy = end[0] - start[0], end[1] - start[1]
        page.keyboard.press("Enter")
        _status(page, "1 correction(s) saved")
        page.screenshot(path=str(tmp_path / "review_frame12.png"), full_page=True)
    finally:
        session.close()
        server.stop()
    moved = [round(before[0] + dx, 1), round(before[1] + dy, 1), round(before[2] + dx, 1), round(before[3] + dy, 1)]
    assert [c["op"] for c in LabelStore.read(labels).corrections()] == ["swap", "box"]
    assert (labels / CORRECTIONS).is_file()
    fixed = {r.frame: r.by_id() for r in LabelStore.read(labels).records(corrected=True)}
    np.testing.assert_allclose(fixed[12][1].box, moved, atol=0.051)
    np.testing.assert_allclose(before, raw[12][2].box, atol=0.01)  # the page showed id 2's box as 1 after the swap
    for f in range(13, 41):
        np.testing.assert_array_equal(fixed[f][1].box, raw[f][2].box)
        np.testing.assert_array_equal(fixed[f][2].box, raw[f][1].box)
    for f in range(1, 12):
        np.testing.assert_array_equal(fixed[f][1].box, raw[f][1].box)
    out = tmp_path / "mot"
    export(compose_cfg("export", [f"labels={tmp_path / 'labels'}", "format=mot", f"out_dir={out}"]))
    table = read_mot(out / seq.name / "gt" / "gt.txt")
    for f, i, want in [(11, 1, raw[11][1].box), (12, 1, moved), (12, 2, raw[12][1].box), (30, 1, raw[30][2].box),
                       (30, 2, raw[30][1].box)]:
        np.testing.assert_allclose(table.xyxy[(table.frame == f) & (table.track_id == i)][0], want, atol=0.01)
