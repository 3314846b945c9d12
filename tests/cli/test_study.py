"""samqa-study as a user runs it: a real Hydra multirun over methods, cached stages, Table 2, W&B runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli

SMOKE = ["experiment=study_smoke", "progress=false"]


def _results_dir(stdout: str) -> Path:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("results: "), stdout[-2000:]
    return Path(last[len("results: "):])


@pytest.mark.slow  # 1-1.5 min on 2 cores: CI's make test-slow runs it, keeping make test under 15 min
def test_quick_multirun_table_cache_and_one_wandb_run_per_job(tmp_path: Path) -> None:
    args = ["-m", *SMOKE, "annotator=manual,watershed_unet,sam2_video", "logger=wandb"]
    run = run_cli("samqa-study", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = _results_dir(run.stdout)
    rows = json.loads((out / "results.json").read_text())
    runs = json.loads((out / "runs.json").read_text())
    job_dir = {r["annotator"]: Path(j["job_dir"]) for r, j in zip(rows, runs, strict=True)}
    by = {r["annotator"]: r for r in rows}
    assert set(by) == {"manual", "watershed_unet", "sam2_video"}
    for name in ("manual", "watershed_unet"):
        r = by[name]
        assert r["status"] == "ok", r["reason"]
        assert 0 <= r["IDF1"] <= 100 and 0 <= r["HOTA"] <= 100 and r["dataset"] == "synthetic_rats"
        assert set(r["variants"]) == {"paper", "max_ids", "detection_box", "nms_0.5", "new_track_0.5",
                                   "all_fixes", "robust"}
        assert r["tracker_variant"] == "robust" and r["IDF1"] == r["variants"]["robust"]["IDF1"]
        assert (job_dir[name] / "tracks" / "paper" / "tracker.yaml").is_file()
        assert (job_dir[name] / "tracks" / "paper" / "synthetic_rats-eval1.txt").is_file()
        assert (job_dir[name] / "detector" / "best.pt").is_file()
        assert (job_dir[name] / "detector" / "results.csv").is_file()
    assert by["manual"]["interventions_per_100_frames"] == 100.0
    assert by["sam2_video"]["status"] == "skipped" and "annotator.sam2.checkpoint" in by["sam2_video"]["reason"]
    assert "seg_unet" in by["watershed_unet"]["models"]
    table = (out / "table2.md").read_text()
    assert "| Manual annotation" in table and "skipped" in table
    assert "Table 2" in run.stdout and "| U-Net" in run.stdout
    assert (out / "idf1_hota.png").stat().st_size > 0 and (out / "table2.csv").is_file()
    # W&B (offline): one run per job, plus the summary run that holds the whole table
    runs = sorted(tmp_path.rglob("offline-run-*"))
    assert len(runs) == 4, runs
    assert len(list(out.rglob("offline-run-*"))) == 4
    for r in rows:  # each job's own run holds its row; the jobs that ran hold their label-quality table too
        (run_dir,) = (job_dir[r["annotator"]] / "wandb").glob("offline-run-*")
        tables = {p.relative_to(run_dir / "files" / "media" / "table").parts[0]
                  for p in (run_dir / "files" / "media" / "table").rglob("*.table.json")}
        assert any(t.startswith("study_row") for t in tables)
        assert ("label_quality" in tables) == (r["status"] == "ok")
    (summary,) = (out / "wandb").glob("offline-run-*")
    assert list((summary / "files" / "media" / "table").glob("table2_*.table.json"))

    # keys that change only reporting or speed are not part of the cache key: everything is read back
    again = run_cli("samqa-study", *args, "progress=true", "detector.workers=2", "detector.verbose=false", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    out2 = _results_dir(again.stdout)
    assert (out2 / "results.json").read_text() == (out / "results.json").read_text()
    for r in json.loads((out2 / "runs.json").read_text()):
        assert all(st["cached"] for st in r["stages"].values())
    # same config, same numbers: from an empty cache, every stage recomputed, results.json is the same file
    fresh = run_cli("samqa-study", *args, f"study.cache_dir={tmp_path}/cache2", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    out3 = _results_dir(fresh.stdout)
    assert not any(st["cached"] for r in json.loads((out3 / "runs.json").read_text()) for st in r["stages"].values())
    assert (out3 / "results.json").read_text() == (out / "results.json").read_text()


def test_a_bad_tracker_config_fails_its_job_before_training_and_the_others_go_on(tmp_path: Path) -> None:
    run = run_cli("samqa-study", "-m", *SMOKE, "annotator=manual", "logger=csv", "tracker.track_buffer=120,0",
                  cwd=tmp_path)
    assert run.returncode == 1  # a failed job makes the multirun's exit status non-zero, after the report
    rows = json.loads((_results_dir(run.stdout) / "results.json").read_text())
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "tracker.track_buffer" in rows[1]["reason"] and rows[1]["stage_keys"] == {}


def test_detectors_of_several_seeds_give_mean_and_sd(tmp_path: Path) -> None:
    run = run_cli("samqa-study", *SMOKE, "annotator=manual", "logger=csv", "study.detector_seeds=[0,1]", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = _results_dir(run.stdout)
    (row,) = json.loads((out / "results.json").read_text())
    assert row["status"] == "ok" and row["seeds"] == [0, 1] and row["IDF1_sd"] is not None
    # two detectors (cached stages of their own), each tracked and kept in the job folder
    assert {k for k in row["stage_keys"] if k.startswith("detector")} == {"detector[seed=0]", "detector[seed=1]"}
    assert row["stage_keys"]["detector[seed=0]"] != row["stage_keys"]["detector[seed=1]"]
    assert set(row["variants"]["paper"]["IDF1_per_seed"]) == {"0", "1"}
    (run_info,) = json.loads((out / "runs.json").read_text())
    for seed in (0, 1):
        assert (Path(run_info["job_dir"]) / f"seed{seed}" / "tracks" / "paper" / "tracker.yaml").is_file()
        assert (Path(run_info["job_dir"]) / f"seed{seed}" / "detector" / "best.pt").is_file()
    assert " ± " in (out / "table2.md").read_text()


@pytest.mark.slow
def test_manual_labels_give_a_tracker_that_scores_and_zeros_say_why(tmp_path: Path) -> None:
    run = run_cli("samqa-study", "experiment=study_smoke_tracks", "progress=false", "annotator=manual", "logger=csv",
                  cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (row,) = json.loads((_results_dir(run.stdout) / "results.json").read_text())
    assert row["status"] == "ok"
    # a label set produces a real tracking score (tracks started at 0.5: the tiny detector's confidences)
    assert row["variants"]["new_track_0.5"]["IDF1"] > 10, row["variants"]["new_track_0.5"]
    assert row["tracker_variant"] == "robust" and row["IDF1"] > 10, row["variants"]["robust"]  # Table 2's columns
    for name, v in row["variants"].items():  # every zero names its cause, with the detections' figures
        if v["IDF1"] == 0:
            assert v["diagnosis"]["why"] and "conf" in v["diagnosis"]["why"], (name, v["diagnosis"])
    if row["IDF1"] == 0:
        assert "new_track_thresh 0.9" in (_results_dir(run.stdout) / "table2.md").read_text()


@pytest.mark.slow  # 1-1.5 min on 2 cores: CI's make test-slow runs it, keeping make test under 15 min
def test_every_method_that_trains_runs_on_an_import_of_boxes(tmp_path: Path, tiny_rats: Path) -> None:
    """A user's import (MOTChallenge layout) labelled with boxes only, its evaluation split labelled too: the manual
    row, SAM-QA (its student fine-tuned on the boxes) and both segmentation baselines (trained on the boxes) all
    label, train a detector, track and score; none needs a mask."""
    from tests.conftest import boxes_only

    source = boxes_only(tiny_rats, tmp_path / "source")
    run = run_cli("samqa-study", "-m", *SMOKE, "data=motchallenge", f"data.source={source}", "~data.size",
                  "data.train=[synthetic_rats-train]", "annotator=manual,samqa,watershed_unet,watershed_deeplabv3",
                  "logger=csv", cwd=tmp_path, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads((_results_dir(run.stdout) / "results.json").read_text())
    assert [(r["annotator"], r["status"], r["reason"]) for r in rows] == [
        (m, "ok", "") for m in ("manual", "samqa", "watershed_unet", "watershed_deeplabv3")]
    for r in rows:
        assert r["dataset"] == "source" and 0 <= r["IDF1"] <= 100
        (quality,) = r["label_quality"].values()  # scored against the import's boxes
        assert quality["frames"] == 40 and quality["mean_mask_iou"] is None
    assert set(rows[1]["models"]) == {"sam_finetune"} and set(rows[3]["models"]) == {"seg_deeplabv3"}
