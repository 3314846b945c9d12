"""samqa-review as a user runs it: it prints the page's URL (with its token), serves the label set, and stops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from samqa_framework.data.sequence import DatasetManifest
from tests.annotate.review.helpers import LiveRun


def test_samqa_review_prints_a_url_that_serves_the_labels(tiny_rats: Path, tmp_path: Path) -> None:
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
    run = LiveRun(seq, tmp_path / "labels" / seq.name, answer_by="oracle")
    run.start()
    run.join()
    env = {**os.environ, "SAMQA_ROOT": str(tmp_path), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    # the module, not the console script: an environment installed before samqa-review existed lacks the script
    proc = subprocess.Popen([sys.executable, "-m", "samqa_framework.cli.review", f"labels={tmp_path / 'labels'}",
                             "serve_seconds=120"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            if found:
                break
        assert found, "".join(lines)[-3000:]
        base, token = found.groups()
        state = requests.get(f"{base}/api/state", headers={"X-Samqa-Token": token}, timeout=30)
        assert state.status_code == 200 and state.json()["mode"] == "review" and state.json()["stored"] == 40
        assert requests.get(f"{base}/api/state", timeout=30).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=60)
