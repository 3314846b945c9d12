"""samqa-annotate as a user runs it: killed mid-video and restarted, it ends with the uninterrupted labels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.helpers import BIN, run_cli

ARGS = ["annotator=samqa", "data.size=tiny", "model.image_size=64", "logger=csv", "progress=false"]


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow  # 1-1.5 min on 2 cores: CI's make test-slow runs it, keeping make test under 15 min
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


def test_qa_pareto_search_returns_both_objectives_and_reports_the_front(tmp_path: Path) -> None:
    """`samqa-annotate -m hparams_search=qa_pareto`: Optuna (NSGA-II) runs SAM-QA trials that each return box IoU and
    interventions; the sweep folder gets Optuna's front and our report of every trial."""
    sweep = tmp_path / "sweep"
    result = run_cli("samqa-annotate", "-m", "hparams_search=qa_pareto", *ARGS, "max_frames=8",
                     "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.population_size=2",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((sweep / "pareto.json").read_text())
    assert report["objectives"] == ["mean_box_iou", "interventions_per_100_frames"]
    assert len(report["trials"]) == 4
    for trial in report["trials"]:
        assert set(trial["params"]) == {"qa.overlap_thresh", "qa.box_margin", "qa.refine_passes",
                                        "qa.recheck_missing", "search.size_lo", "search.size_hi"}
        quality = json.loads((Path(trial["dir"]) / "labels" / "synthetic_rats-train" / "label_quality.json")
                             .read_text())
        assert trial["values"] == [quality["mean_box_iou"], quality["interventions_per_100_frames"]]
        lo, hi = json.loads((Path(trial["dir"]) / "labels" / "synthetic_rats-train" / "store.json").read_text())[
            "fingerprint"]["annotator"]["qa"]["size_ratio"]
        assert (lo, hi) == (float(trial["params"]["search.size_lo"]), float(trial["params"]["search.size_hi"]))
    assert 1 <= len(report["pareto_front"]) <= 4
    assert (sweep / "optimization_results.yaml").is_file() and (sweep / "pareto.png").is_file()
    assert "Pareto front" in result.stdout
