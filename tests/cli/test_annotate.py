"""samqa-annotate as a user runs it: killed mid-video and restarted, it ends with the uninterrupted labels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.helpers import BIN, run_cli

ARGS = ["annotator=samqa", "data.size=tiny", "model.image_size=64", "logger=csv", "progress=false"]


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_samqa_killed_and_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full = run_cli("samqa-annotate", *ARGS, f"out_dir={tmp_path}/full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "| samqa | 40 |" in full.stdout and full.stdout.strip().endswith(f"labels: {tmp_path}/full")
    store = tmp_path / "part" / "synthetic_rats-train" / "labels.jsonl"
    env = {**os.environ, "SAMQA_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    proc = subprocess.Popen([str(BIN / "samqa-annotate"), *ARGS, f"out_dir={tmp_path}/part"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _lines(store) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _lines(store)
    assert 8 <= killed_at < 40, f"the kill came too late to test anything ({killed_at} frames)"
    resumed = run_cli("samqa-annotate", *ARGS, f"out_dir={tmp_path}/part", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming synthetic_rats-train at frame" in resumed.stdout + resumed.stderr
    seq = "synthetic_rats-train"
    for name in ("labels.jsonl", "labels.txt", "masks.jsonl"):
        assert (tmp_path / "part" / seq / name).read_bytes() == (tmp_path / "full" / seq / name).read_bytes(), name
    quality = json.loads((tmp_path / "part" / seq / "label_quality.json").read_text())
    assert quality["frames"] == 40 and set(quality) >= {"mean_box_iou", "mean_mask_iou", "id_switches",
                                                        "interventions_per_100_frames", "frames"}


def test_another_config_on_the_same_labels_is_refused(tmp_path: Path) -> None:
    args = ["annotator=manual", "data.size=tiny", "logger=csv", "progress=false", f"out_dir={tmp_path}/l"]
    assert run_cli("samqa-annotate", *args, "max_frames=5", cwd=tmp_path).returncode == 0
    other = run_cli("samqa-annotate", *args, "annotator.every=2", cwd=tmp_path)
    assert other.returncode == 1
    assert "store.json" in other.stderr and "another configuration" in other.stderr
