"""samqa-annotate prompts=web as a user runs it: killed with SIGKILL right after the page acknowledged an answer, the
same command resumes with that answer (the frame is not asked again) and stores it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import requests

from samqa_framework.annotate.store import ANSWERS, LabelStore
from samqa_framework.data.sequence import DatasetManifest
from tests.annotate.review.helpers import gt_answer
from tests.cli.helpers import BIN

ARGS = ["annotator=samqa", "prompts=web", "data.size=tiny", "model.image_size=64", "logger=csv", "progress=false",
        "max_frames=4"]
URL = re.compile(r"review page \(.*\): (http://127\.0\.0\.1:\d+)/\?token=(\S+)")


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], str, str]:
    env = {**os.environ, "SAMQA_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(BIN / "samqa-annotate"), *ARGS, f"out_dir={tmp_path}/labels"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        found = URL.search(line)
        if found:
            return proc, found.group(1), found.group(2)
    raise AssertionError(f"no review URL printed: {''.join(seen)[-3000:]}")


def _question(base: str, token: str, after: int) -> dict | None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            got = requests.get(f"{base}/api/question", params={"after": after, "wait": 5},
                               headers={"X-Samqa-Token": token}, timeout=30)
        except requests.ConnectionError:
            return None  # the run finished and its page stopped
        if got.status_code == 200:
            return got.json()
    raise AssertionError("no question within 120 s")


def test_kill_9_right_after_an_answer_loses_nothing(tmp_path: Path) -> None:
    proc, base, token = _start(tmp_path)
    try:
        assert _question(base, token, 0)["frame"] == 1
        seq_dir = tmp_path / "labels" / "synthetic_rats-train"
        dataset = tmp_path / "data" / "synthetic_rats-tiny"  # paths.dataset_dir under SAMQA_ROOT
        seq = DatasetManifest.read(dataset).sequences(dataset, "train")[0]
        answer = gt_answer(seq, 1)
        ok = requests.post(f"{base}/api/answer", json={"frame": 1, "boxes": answer},
                           headers={"X-Samqa-Token": token}, timeout=30)
        proc.send_signal(signal.SIGKILL)  # right after the acknowledgement
        assert ok.status_code == 200, ok.text
    finally:
        proc.kill()
        proc.wait()
    assert [json.loads(line)["frame"] for line in (seq_dir / ANSWERS).read_text().splitlines()] == [1]

    proc, base, token = _start(tmp_path)  # the same command again
    asked = []
    try:
        while (q := _question(base, token, asked[-1] if asked else 0)) is not None:
            asked.append(q["frame"])
            requests.post(f"{base}/api/answer", json={"frame": q["frame"], "boxes": gt_answer(seq, q["frame"])},
                          headers={"X-Samqa-Token": token}, timeout=30).raise_for_status()
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        proc.wait()
    assert 1 not in asked  # frame 1 came from the journal, not from a second question
    first = LabelStore.read(seq_dir).record(1)
    assert first.interventions == 1 and {i.source for i in first.instances} == {"manual"}
    for inst, want in zip(first.instances, answer, strict=True):
        assert inst.track_id == want["id"]
        np.testing.assert_allclose(inst.box, want["box"], atol=0.005)  # the store keeps 2 decimals
    assert LabelStore.read(seq_dir).count() == 4 and (seq_dir / "labels.txt").is_file()
