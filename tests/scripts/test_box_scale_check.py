"""scripts/box_scale_check.py: a study job's cached detections re-tracked with scaled boxes, scored again."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.data.mot import MotTable, write_mot
from samqa_framework.data.sequence import SeqInfo
from samqa_framework.track.bytetrack import ByteTrack

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "box_scale_check.py"
FRAMES = 20


def _load():
    spec = importlib.util.spec_from_file_location("box_scale_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _study(tmp_path: Path) -> tuple[Path, Path]:
    """A data set of one sequence (two animals walking apart), a detect stage that found exactly them and a track
    stage's robust tracker.yaml, and the run's runs.json pointing at both."""
    data = tmp_path / "data"
    frames, ids, boxes = [], [], []
    for t in range(1, FRAMES + 1):
        for animal, x in ((1, 20.0 + t), (2, 200.0 - t)):
            frames.append(t), ids.append(animal), boxes.append([x, 50.0, 30.0, 20.0])
    gt = MotTable(frames, ids, boxes)
    write_mot(data / "s" / "gt" / "gt.txt", gt)
    SeqInfo(name="s", frame_rate=25, seq_length=FRAMES, width=320, height=240).write(data / "s" / "seqinfo.ini")
    detect = tmp_path / "cache" / "detect" / "k1"
    write_mot(detect / "s.txt", MotTable(gt.frame, gt.track_id, gt.box, np.full(len(gt), 0.95)), columns=10)
    track = tmp_path / "cache" / "track" / "k2"
    ByteTrack(new_track_thresh=0.5, box_source="detection", max_ids=2).save_yaml(track / "robust" / "tracker.yaml")
    run = tmp_path / "run"
    run.mkdir()
    stages = {"detect[seed=0]": {"dir": str(detect)}, "track[seed=0]": {"dir": str(track)}}
    (run / "runs.json").write_text(json.dumps([{"method": "SAM-QA", "dataset": "mice", "stages": stages}]))
    return run, data


def test_scaled_boxes_keep_their_centres() -> None:
    table = MotTable([1], [1], [[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(_load().scaled(table, 0.5).box, [[17.5, 30.0, 15.0, 20.0]])


def test_the_jobs_detections_score_again_and_shrunken_boxes_lose_the_matches(tmp_path: Path) -> None:
    run, data = _study(tmp_path)
    out = tmp_path / "check.json"
    assert _load().main(["--run", str(run), "--method", "SAM-QA", "--data", "mice", "--dataset-dir", str(data),
                         "--scales", "1", "0.4", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    same, small = report["scales"]["1"], report["scales"]["0.4"]
    assert same["per_seed"]["0"]["IDF1"] == pytest.approx(100.0) and same["mean"]["IDSW"] == 0
    # boxes at 0.4 of their side overlap the truth at IoU 0.16 < 0.5: nothing matches
    assert small["mean"]["IDF1"] == pytest.approx(0.0) and small["mean"]["DetA"] < same["mean"]["DetA"]


def test_a_job_not_in_the_run_or_a_bad_scale_is_refused(tmp_path: Path) -> None:
    run, data = _study(tmp_path)
    module = _load()
    with pytest.raises(SystemExit, match="0 jobs of method 'U-Net' on 'mice'"):
        module.main(["--run", str(run), "--method", "U-Net", "--data", "mice", "--dataset-dir", str(data)])
    with pytest.raises(SystemExit, match="must be > 0"):
        module.main(["--run", str(run), "--method", "SAM-QA", "--data", "mice", "--dataset-dir", str(data),
                     "--scales", "0"])
    with pytest.raises(SystemExit, match=r"runs\.json: cannot read the run's jobs"):
        module.main(["--run", str(tmp_path), "--method", "SAM-QA", "--data", "mice", "--dataset-dir", str(data)])
    with pytest.raises(SystemExit, match="no such tracker variant"):
        module.main(["--run", str(run), "--method", "SAM-QA", "--data", "mice", "--dataset-dir", str(data),
                     "--variant", "paper"])
