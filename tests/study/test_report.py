from __future__ import annotations

import json
from pathlib import Path

import torch

from samqa_framework.study.report import (
    RESULT_KEYS,
    collect_rows,
    headline_variant,
    machine,
    stage_times,
    table2,
    variants_table,
    write_results,
    write_row,
)


def _row(method: str, dataset: str, status: str = "ok", idf1: float | None = 80.0, interval: int | None = None,
         annotator: str = "x") -> dict:
    return {"method": method, "annotator": annotator, "dataset": dataset, "IDF1": idf1, "HOTA": 60.0 if idf1 else None,
            "interventions_per_100_frames": 3.0, "status": status,
            "reason": "set annotator.sam2.checkpoint" if status == "skipped" else "",
            "zero_shot": "-", "post_processing": "-", "prompt_interval": interval,
            "variants": {"paper": {"IDF1": idf1, "HOTA": 60.0}, "max_ids": {"IDF1": 90.0, "HOTA": 61.0}}
            if status == "ok" else {},
            "job_dir": f"/runs/{method}", "wall_s": 15.5, "machine": {"cpu": "Test CPU", "cpu_capability": "AVX2"},
            "stages": {"annotate": {"key": "k1", "wall_s": 10.0, "cached": False, "dir": "/c/annotate/k1"},
                       "detector": {"key": "k2", "wall_s": 5.0, "cached": True, "dir": "/c/detector/k2"}}}


def test_rows_are_collected_in_job_order_and_written_as_table2(tmp_path: Path) -> None:
    rows = [_row("SAM-QA", "rats", annotator="samqa"), _row("Grounding DINO", "rats", "skipped", None),
            _row("SAM-QA", "mice", annotator="samqa"),
            _row("SAM 2 video", "rats", interval=30, idf1=50.0), _row("SAM 2 video", "rats", interval=15, idf1=65.0)]
    for i, r in enumerate(rows):
        write_row(tmp_path / str(i if i != 2 else 10), r)  # job 10 sorts after job 2..4 numerically
    got = collect_rows(tmp_path)
    assert [r["dataset"] for r in got] == ["rats", "rats", "rats", "rats", "mice"]
    header, lines = table2(got)
    assert header[4:8] == ["rats IDF1", "rats HOTA", "mice IDF1", "mice HOTA"]
    samqa = next(line for line in lines if line[0] == "SAM-QA")
    assert samqa[3] == "3.0, 3.0 / 100 frames" and samqa[4:8] == ["80.0", "60.0", "80.0", "60.0"]
    skipped = next(line for line in lines if line[0] == "Grounding DINO")
    assert skipped[4] == "skipped" and "rats: set annotator.sam2.checkpoint" in skipped[-1]
    assert [line[3] for line in lines if line[0] == "SAM 2 video"] == ["30", "15"]
    files = write_results(tmp_path, got)
    results = json.loads(files["results"].read_text())
    assert all(set(RESULT_KEYS) <= set(r) for r in results) and len(results) == 5
    assert {r["status"] for r in results} == {"ok", "skipped"}
    # results.json holds what the config decides (stage keys included), runs.json where and how long it ran
    assert all(r["stage_keys"] == {"annotate": "k1", "detector": "k2"} for r in results)
    assert not any(k in r for r in results for k in ("job_dir", "wall_s", "stages"))
    runs = json.loads(files["runs"].read_text())
    assert runs[0]["job_dir"] == "/runs/SAM-QA" and runs[0]["stages"]["detector"]["cached"] is True
    assert runs[0]["machine"]["cpu"] == "Test CPU" and not any("machine" in r for r in results)
    assert files["fig3a"].stat().st_size > 0 and files["bars"].stat().st_size > 0
    assert "max_ids IDF1" in (tmp_path / "table2.md").read_text()
    assert (tmp_path / "table2.csv").read_text().splitlines()[0].startswith("method,zero-shot")
    assert stage_times(got) == {"annotate": 50.0, "detector": 0.0}


def test_a_row_names_the_cpu_it_ran_on() -> None:
    m = machine()
    assert m["cpu"] and m["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert m["torch_threads"] == torch.get_num_threads() >= 1
    assert m["versions"]["torch"] == torch.__version__.split("+")[0] and m["versions"]["ultralytics"]


def test_table2_names_the_tracker_variant_of_its_columns(tmp_path: Path) -> None:
    rows = [_row("SAM-QA", "rats"), _row("Grounding DINO", "rats", "skipped", None)]
    assert headline_variant(rows) == "tracker variant `paper` (the paper's ByteTrack)"  # inferred: paper's figures
    for r in rows:
        r["tracker_variant"] = "max_ids"
    rows[0]["IDF1"], rows[0]["HOTA"] = 90.0, 61.0
    assert headline_variant(rows) == "tracker variant `max_ids`"
    del rows[0]["tracker_variant"], rows[1]["tracker_variant"]
    assert headline_variant(rows) == "tracker variant `max_ids`"  # an older results.json: the matching variant
    write_results(tmp_path, rows)
    assert "(IDF1 / HOTA, tracker variant `max_ids`)" in (tmp_path / "table2.md").read_text()


def test_a_zero_in_table2_and_the_variants_says_why() -> None:
    why = "no track started: no detection >= new_track_thresh 0.9 (max conf 0.62, median 0.25)"
    row = _row("Manual annotation", "mice", idf1=0.0) | {"diagnosis": {"why": why}}
    row["variants"]["paper"] = {"IDF1": 0.0, "HOTA": 0.0, "diagnosis": {"why": why}}
    row["variants"]["max_ids"]["diagnosis"] = {"why": None}
    _, lines = table2([row])
    assert lines[0][4] == "0.0" and lines[0][-1] == f"mice: {why}"
    header, v_lines = variants_table([row])
    assert header[-1] == "zeros" and v_lines[0][-1] == f"paper: {why}"  # max_ids scored 90: no note
    fine = _row("SAM-QA", "rats")
    assert table2([fine])[1][0][-1] == "" and variants_table([fine])[1][0][-1] == ""


def _seeds(*figures: tuple[str | None, float, float]) -> dict:
    """A diagnosis over detector seeds as the study writes it: per seed the sentence with its figures."""
    per_seed = {str(s): {"max_conf": top, "median_conf": mid,
                         "why": why and f"{why} (max conf {top:.2f}, median {mid:.2f})"}
                for s, (why, top, mid) in enumerate(figures)}
    return {"why": "; ".join(f"seed {s}: {d['why']}" for s, d in per_seed.items() if d["why"]) or None,
            "per_seed": per_seed}


def test_seeds_failing_for_one_reason_are_told_once_with_their_figures_as_ranges() -> None:
    none = "no track started: no detection >= new_track_thresh 0.9"
    low = "most detections below track_high_thresh 0.5: only the second association sees them"
    diag = _seeds((none, 0.78, 0.37), (none, 0.76, 0.34), (low, 0.95, 0.31))
    row = _row("U-Net", "mice", idf1=0.0) | {"diagnosis": diag}
    row["variants"] = {v: {"IDF1": 0.0, "HOTA": 0.0, "IDF1_per_seed": {"0": 0.0, "1": 0.0, "2": 0.0},
                           "diagnosis": diag} for v in ("paper", "max_ids")}
    row["variants"]["robust"] = {"IDF1": 59.3, "HOTA": 47.4, "IDF1_per_seed": {"0": 60.0, "1": 55.0, "2": 63.0},
                                 "diagnosis": _seeds((low, 0.79, 0.31), (None, 0.8, 0.6), (low, 0.79, 0.33))}
    expected = (f"2/3 seeds: {none} (max conf 0.76-0.78, median 0.34-0.37); "
                f"1/3 seeds: {low} (max conf 0.95, median 0.31)")
    assert table2([row])[1][0][-1] == f"mice: {expected}"
    # the variants with the same diagnosis are named together; robust scored, so it has no zero note
    assert variants_table([row])[1][0][-1] == f"paper, max_ids: {expected}"
    row["variants"]["max_ids"]["diagnosis"] = {"why": None, "per_seed": {"0": {"why": None}}}
    assert variants_table([row])[1][0][-1] == f"paper: {expected}; max_ids: no figure explains it"


def test_samqa_interventions_per_data_set_in_column_order() -> None:
    rats, mice = _row("SAM-QA", "rats", annotator="samqa"), _row("SAM-QA", "mice", annotator="samqa")
    mice["interventions_per_100_frames"] = 11.25
    header, lines = table2([rats, mice])
    assert header[4] == "rats IDF1" and lines[0][3] == "3.0, 11.2 / 100 frames"
    # a SAM-QA job on one of two data sets: its lone figure names the data set it was measured on
    other = _row("Manual", "rats")
    assert table2([other, mice])[1][1][3] == "mice 11.2 / 100 frames"
    assert table2([mice])[1][0][3] == "11.2 / 100 frames"  # one data set in the table: nothing to confuse
    skipped = _row("SAM 2 video", "rats", "skipped", None, interval=15)
    assert table2([skipped])[1][0][3] == "15"  # a fixed interval is a setting: shown even when the job was skipped


def test_a_reason_shared_by_data_sets_is_told_once() -> None:
    rows = [_row("DINOv2", d, "skipped", None) for d in ("rats", "mice")] + [_row("DINOv2", "flies", "failed", None)]
    rows[2]["reason"] = "ValueError: bad frames.txt line 3"
    assert table2(rows)[1][0][-1] == ("rats, mice: set annotator.sam2.checkpoint; "
                                      "flies: ValueError: bad frames.txt line 3")
