"""samqa-study as a user runs it: a real Hydra multirun over methods, cached stages, Table 2, W&B runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import run_cli

SMOKE = ["experiment=study_smoke", "progress=false"]


def _results_dir(stdout: str) -> Path:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("results: "), stdout[-2000:]
    return Path(last[len("results: "):])


def test_quick_multirun_table_cache_and_one_wandb_run_per_job(tmp_path: Path) -> None:
    args = ["-m", *SMOKE, "annotator=manual,watershed_unet,sam2_video", "logger=wandb"]
    run = run_cli("samqa-study", *args, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = _results_dir(run.stdout)
    rows = json.loads((out / "results.json").read_text())
    by = {r["annotator"]: r for r in rows}
    assert set(by) == {"manual", "watershed_unet", "sam2_video"}
    for name in ("manual", "watershed_unet"):
        r = by[name]
        assert r["status"] == "ok", r["reason"]
        assert 0 <= r["IDF1"] <= 100 and 0 <= r["HOTA"] <= 100 and r["dataset"] == "synthetic_rats"
        assert set(r["variants"]) == {"paper", "max_ids", "detection_box", "nms_0.5", "new_track_0.5",
                                   "all_fixes"}
        assert (Path(r["job_dir"]) / "tracks" / "paper" / "tracker.yaml").is_file()
        assert (Path(r["job_dir"]) / "tracks" / "paper" / "synthetic_rats-eval1.txt").is_file()
        assert (Path(r["job_dir"]) / "detector" / "best.pt").is_file()
        assert (Path(r["job_dir"]) / "detector" / "results.csv").is_file()
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
        (run_dir,) = (Path(r["job_dir"]) / "wandb").glob("offline-run-*")
        tables = {p.relative_to(run_dir / "files" / "media" / "table").parts[0]
                  for p in (run_dir / "files" / "media" / "table").rglob("*.table.json")}
        assert any(t.startswith("study_row") for t in tables)
        assert ("label_quality" in tables) == (r["status"] == "ok")
    (summary,) = (out / "wandb").glob("offline-run-*")
    assert list((summary / "files" / "media" / "table").glob("table2_*.table.json"))

    again = run_cli("samqa-study", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rows2 = json.loads((_results_dir(again.stdout) / "results.json").read_text())
    for r1, r2 in zip(rows, rows2, strict=True):
        assert (r1["IDF1"], r1["HOTA"], r1["status"]) == (r2["IDF1"], r2["HOTA"], r2["status"])
        assert all(st["cached"] for st in r2["stages"].values())


def test_a_bad_tracker_config_fails_its_job_before_training_and_the_others_go_on(tmp_path: Path) -> None:
    run = run_cli("samqa-study", "-m", *SMOKE, "annotator=manual", "logger=csv", "tracker.track_buffer=120,0",
                  cwd=tmp_path)
    assert run.returncode == 1  # a failed job makes the multirun's exit status non-zero, after the report
    rows = json.loads((_results_dir(run.stdout) / "results.json").read_text())
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "tracker.track_buffer" in rows[1]["reason"] and rows[1]["stages"] == {}
