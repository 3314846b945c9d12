"""The review page's HTTP API without a browser: the oracle answers through it, every request needs the token, bodies
are capped and checked, frames are named by number only, corrections are journaled and rebuild the label files, and a
running review holds the label store against other writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.prompts import OraclePrompts
from samqa_framework.annotate.review.app import CSP
from samqa_framework.annotate.review.task import open_review
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.annotate.store import ANSWERS, CORRECTIONS, LabelStore
from samqa_framework.data.mot import read_mot
from samqa_framework.data.sequence import Sequence
from tests.annotate.helpers import GtMaskPredictor
from tests.annotate.review.helpers import LiveRun, gt_answer
from tests.annotate.samqa.test_annotator import QA

CORRUPT = {5: "empty"}  # frame 5 loses both animals: a second question


def test_the_oracle_answers_through_the_page_and_labels_equal_oracle_prompts(seq: Sequence, tmp_path: Path) -> None:
    direct = SamQaAnnotator(GtMaskPredictor(seq, CORRUPT, corrupt_points=True), OraclePrompts(), QA)
    annotate_sequence(direct, seq, tmp_path / "direct", {"web": 1}, progress=False)
    run = LiveRun(seq, tmp_path / "web", CORRUPT, answer_by="oracle")
    run.start()
    result = run.join()
    assert result.frames == 40 and result.counts["interventions"] == 2
    assert (tmp_path / "web" / "labels.jsonl").read_bytes() == (tmp_path / "direct" / "labels.jsonl").read_bytes()
    answers = [json.loads(line) for line in (tmp_path / "web" / ANSWERS).read_text().splitlines()]
    assert [(a["frame"], a["by"]) for a in answers] == [(1, "oracle"), (5, "oracle")]
    assert answers[0]["boxes"] == [{"id": b["id"], "box": [round(v, 2) for v in b["box"]]} for b in gt_answer(seq, 1)]
    assert run.prompts.server is None and run.prompts.session.closed  # the server stopped with the run


def test_every_request_needs_the_token_and_bodies_are_capped_and_checked(seq: Sequence, tmp_path: Path) -> None:
    run = LiveRun(seq, tmp_path / "web", CORRUPT, max_body_bytes=2048)
    url = run.start()
    assert url.startswith("http://127.0.0.1:") and "token=" not in url
    for path in ("/", "/api/state", "/static/app.js", "/api/frame.jpg?frame=1", "/api/question?wait=0"):
        for token in (None, "wrong"):
            refused = run.api("GET", path, token=token)
            assert refused.status_code == 403, path
            assert refused.headers["Content-Security-Policy"] == CSP
    assert run.api("GET", "/?token=wrong", token=None).status_code == 403
    page = run.api("GET", f"/?token={run.prompts.token}", token=None)
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == CSP
    assert f'src="/static/app.js?token={run.prompts.token}"' in page.text
    question = run.api("GET", "/api/question?after=0&wait=30")
    assert question.status_code == 200 and question.json()["frame"] == 1
    for path in ("/static/../store.json", "/static/index.html", "/static/%2e%2e%2fstore.json"):
        assert run.api("GET", path).status_code == 404, path
    assert run.api("GET", "/api/frame.jpg?frame=../labels.jsonl").status_code == 400
    assert "1..40" in run.api("GET", "/api/frame.jpg?frame=41").json()["error"]
    image = run.api("GET", "/api/frame.jpg?frame=1")
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    too_big = run.api("POST", "/api/answer", data=b"[" + b" " * 4096 + b"]")
    assert too_big.status_code == 413
    chunked = run.api("POST", "/api/answer", data=iter([b"[", b" " * 4096, b"]"]))
    assert chunked.status_code == 413
    for body, reason in [({"frame": 1, "boxes": [{"id": 1, "box": [50, 5, 20, 9]}]}, "not x1 < x2"),
                         ({"frame": 1, "boxes": [{"id": 1, "box": [1, 2, 3]}]}, "a list of 4 numbers"),
                         ({"frame": 1, "boxes": [{"id": 1, "box": [1, 2, 3, 4000]}]}, "outside the 160x120 frame"),
                         ({"frame": 1, "boxes": [{"box": [1, 2, 3, 4]}]}, "entry 1: expected"),
                         ({"frame": 1, "boxes": "x"}, "expected a list of boxes"),
                         ({"boxes": []}, "expected"), ({"frame": 7, "boxes": []}, "no open question for frame 7")]:
        refused = run.api("POST", "/api/answer", json=body)
        assert refused.status_code in (400, 409) and reason in refused.json()["error"], (body, refused.text)
    assert run.api("POST", "/api/answer", data=b"{not json").status_code == 400
    assert run.api("POST", "/api/correct", json={"op": "swap", "frame": 1, "ids": [1, 2]}).status_code == 409
    assert not (tmp_path / "web" / ANSWERS).exists()  # nothing refused was journaled; the annotation still waits
    assert run.api("POST", "/api/answer", json={"frame": 1, "boxes": gt_answer(seq, 1)}).status_code == 200
    question = run.api("GET", "/api/question?after=1&wait=60")
    assert question.status_code == 200 and question.json()["frame"] == 5  # annotation went on to the next question
    assert set(question.json()["failed"].values()) == {"empty"} and len(question.json()["previous"]) == 2
    assert run.api("POST", "/api/answer", json={"frame": 5, "boxes": gt_answer(seq, 5)}).status_code == 200
    assert run.join().frames == 40


@pytest.fixture
def finished(seq: Sequence, tmp_path: Path) -> Path:
    run = LiveRun(seq, tmp_path / "labels" / seq.name, CORRUPT, answer_by="oracle")
    run.start()
    run.join()
    return tmp_path / "labels" / seq.name


def test_corrections_are_journaled_checked_and_rebuild_the_label_files(finished: Path) -> None:
    session, server, url = open_review(finished, max_body_bytes=2048)
    try:
        import requests

        token = url.split("token=")[1]
        base = url.split("/?")[0]

        def post(body: dict) -> requests.Response:
            return requests.post(f"{base}/api/correct", json=body, headers={"X-Samqa-Token": token}, timeout=60)

        assert requests.post(f"{base}/api/correct", json={}, timeout=60).status_code == 403
        assert "1..40" in post({"op": "swap", "frame": 41, "ids": [1, 2]}).json()["error"]
        assert "outside the 160x120" in post({"op": "box", "frame": 3, "id": 1, "box": [0, 0, 500, 9]}).json()["error"]
        assert "two different" in post({"op": "swap", "frame": 3, "ids": [2, 2]}).json()["error"]
        assert not (finished / CORRECTIONS).exists()
        assert post({"op": "box", "frame": 3, "id": 1, "box": [10, 10, 40, 30]}).status_code == 200
        assert post({"op": "swap", "frame": 20, "ids": [1, 2]}).status_code == 200
        board = requests.get(f"{base}/api/board", headers={"X-Samqa-Token": token}, timeout=60).json()
        assert board["stored"] == 40 and board["corrected"] == [3, 20] and board["source"][0] == "m"
        assert board["flags"]["5"] == "id 1: empty; id 2: empty" and board["source"][4] == "m"
    finally:
        session.close()
        server.stop()
    store = LabelStore.read(finished)
    raw = {r.frame: r.by_id() for r in store.records()}
    fixed = {r.frame: r.by_id() for r in store.records(corrected=True)}
    np.testing.assert_array_equal(fixed[3][1].box, [10, 10, 40, 30])
    for f in range(20, 41):
        np.testing.assert_array_equal(fixed[f][1].box, raw[f][2].box)
        np.testing.assert_array_equal(fixed[f][2].box, raw[f][1].box)
    table = read_mot(finished / "labels.txt")
    row = (table.frame == 25) & (table.track_id == 1)
    np.testing.assert_allclose(table.xyxy[row][0], raw[25][2].box, atol=0.01)


def test_a_running_review_refuses_a_second_writer_naming_itself_and_frees_the_store_when_it_stops(
        finished: Path) -> None:
    import os
    import subprocess
    import sys

    # an annotation resuming into the same folder, in its own process, as `samqa-annotate out_dir=...` would
    code = ("import sys\nfrom samqa_framework.annotate.store import LabelStore\n"
            "LabelStore(sys.argv[1], {'web': 1}).close()\n")

    def second_writer() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, str(finished)], capture_output=True, text=True,
                              timeout=120, check=False)

    session, server, _ = open_review(finished)
    try:
        refused = second_writer()
        assert refused.returncode != 0 and "LockedError" in refused.stderr, refused.stderr[-2000:]
        assert f"this label store is being written by another process (pid {os.getpid()} on" in refused.stderr
    finally:
        session.close()
        server.stop()
        session.store.close()
    resumed = second_writer()
    assert resumed.returncode == 0, resumed.stderr[-2000:]
