"""scripts/readme_tables.py: README's tables come from a results.json, replaced between markers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "readme_tables.py"


def _row(method: str, dataset: str, idf1: float, sd: float | None = None) -> dict:
    return {"method": method, "annotator": "samqa", "dataset": dataset, "IDF1": idf1, "HOTA": 50.0, "IDF1_sd": sd,
            "HOTA_sd": sd, "interventions_per_100_frames": 1.5, "status": "ok", "reason": "",
            "label_quality": {"a": {"mean_box_iou": 0.9}, "b": {"mean_box_iou": 0.8}},
            "diagnosis": {"why": None}, "variants": {"paper": {"IDF1": idf1, "HOTA": 50.0}}}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("block", ["table2", "ablation"])
def test_a_block_is_replaced_by_the_tables_of_a_results_file(tmp_path: Path, block: str) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_row("SAM-QA [qa=paper]", "synthetic_rats", 71.25, 1.5)]))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n<!-- {block}:begin -->\nold 99.9\n<!-- {block}:end -->\nafter\n")
    run = _run("--results", str(results), "--block", block, "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old 99.9" not in text and text.startswith("intro\n") and text.endswith(f"<!-- {block}:end -->\nafter\n")
    assert "71.2 ± 1.5" in text and "SAM-QA [qa=paper]" in text and "sha256" in text
    if block == "ablation":
        assert "| 0.850 " in text  # the mean box IoU over the sequences
    else:
        assert "IDF1 / HOTA: tracker variant `paper` (the paper's ByteTrack)." in text  # which columns these are


def test_the_ablation_block_joins_one_results_file_per_data_set_and_other_blocks_take_one(tmp_path: Path) -> None:
    rats, mice = tmp_path / "rats" / "results.json", tmp_path / "mice" / "results.json"
    for f, row in ((rats, _row("SAM-QA [qa=default]", "synthetic_rats", 98.3)),
                   (mice, _row("SAM-QA [qa=default]", "synthetic_mice", 91.4))):
        f.parent.mkdir()
        f.write_text(json.dumps([row]))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- ablation:begin -->\n<!-- ablation:end -->\n<!-- table2:begin -->\n<!-- table2:end -->\n")
    run = _run("--results", str(rats), str(mice), "--block", "ablation", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert text.index("synthetic_rats") < text.index("synthetic_mice") and "| 98.3 " in text and "| 91.4 " in text
    assert "`results.json` of `rats`, `results.json` of `mice`" in text
    one = text.split("sha256 ")[1][:12]
    mice.write_text(json.dumps([_row("SAM-QA [qa=default]", "synthetic_mice", 91.5)]))  # the digest covers both
    assert _run("--results", str(rats), str(mice), "--block", "ablation", "--readme", str(readme)).returncode == 0
    assert readme.read_text().split("sha256 ")[1][:12] != one
    refused = _run("--results", str(rats), str(mice), "--block", "table2", "--readme", str(readme))
    assert refused.returncode != 0 and "reads one --results file (2 given)" in refused.stderr
    mice.write_text("{not json")  # a broken file is named, the README left as it was
    before = readme.read_text()
    broken = _run("--results", str(rats), str(mice), "--block", "ablation", "--readme", str(readme))
    assert broken.returncode != 0 and f"{mice}: not JSON" in broken.stderr and readme.read_text() == before


def test_a_named_table2_block_adds_the_runs_minutes_from_runs_json_beside_it(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_row("Manual", "synthetic_mice", 90.0, 0.5)]))
    stage = {"wall_s": 600.0, "cached": False}
    (tmp_path / "runs.json").write_text(json.dumps([
        {"method": "Manual", "stages": {"detector[seed=0]": {**stage, "key": "a"}, "annotate": {**stage, "key": "b"}},
         "machine": {"cpu": "Test CPU", "cpu_capability": "AVX2", "cpus": 2, "torch_threads": 2, "torch": "2"}},
        # the same detector read from the cache by a second job: counted once
        {"method": "Manual", "stages": {"detector[seed=0]": {**stage, "key": "a", "cached": True}}}]))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- table2_quick_all:begin -->\n<!-- table2_quick_all:end -->\n")
    run = _run("--results", str(results), "--block", "table2_quick_all", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "90.0 ± 0.5" in text and "took 20.0 min from an empty cache" in text
    assert "annotation 10.0, YOLOv8n 10.0" in text and "1 stage(s) of this run came from the cache" in text
    assert "On Test CPU (AVX2, 2 torch threads)." in text


def test_missing_markers_are_an_error_naming_the_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_row("Manual", "rats", 80.0)]))
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    run = _run("--results", str(results), "--block", "table2", "--readme", str(readme))
    assert run.returncode != 0 and str(readme) in run.stderr and readme.read_text() == "no markers\n"


def test_a_pareto_block_shows_the_sweeps_front_and_copies_its_plot(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    front = [{"params": {"qa.overlap_thresh": 0.3071, "qa.refine_passes": "0"}, "values": [0.909, 1.2], "trials": 2}]
    trials = [{"number": 0, "params": {}, "values": [0.909, 1.2]}, {"number": 1, "params": {}, "values": None},
              {"number": 2, "params": {}, "values": [0.85, 3.0]}]
    (sweep / "pareto.json").write_text(json.dumps({
        "objectives": ["mean_box_iou", "interventions_per_100_frames"], "directions": ["maximize", "minimize"],
        "trials": trials, "pareto_front": front}))
    (sweep / "pareto.png").write_bytes(b"\x89PNG fake")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- qa_pareto_rats:begin -->\nold\n<!-- qa_pareto_rats:end -->\n")
    run = _run("--results", str(sweep / "pareto.json"), "--block", "qa_pareto_rats", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old" not in text and "| 0.307 | 0 | 0.909 | 1.2 | 2 |" in text
    assert "1 settings on the front of 2 finished trials" in text
    assert "![qa_pareto_rats](docs/qa_pareto_rats.png)" in text
    assert (tmp_path / "docs" / "qa_pareto_rats.png").read_bytes() == b"\x89PNG fake"


def test_a_qa_check_block_lists_each_annotate_run_with_its_settings_and_label_quality(tmp_path: Path) -> None:
    runs = tmp_path / "qa_check"
    for name, margin, iou in (("b_candidate", 0.2, 0.9087), ("a_current", 0.1, 0.91)):
        (runs / name / ".hydra").mkdir(parents=True)
        (runs / name / ".hydra" / "config.yaml").write_text(
            f"data: {{name: synthetic_rats}}\nqa: {{overlap_thresh: 0.45, size_ratio: [0.6, 1.5], box_margin: {margin},"
            " refine_passes: 1, recheck_missing: 15}\n")
        (runs / name / "labels" / "seq").mkdir(parents=True)
        (runs / name / "labels" / "seq" / "label_quality.json").write_text(json.dumps(
            {"frames": 1000, "mean_box_iou": iou, "id_switches": 0, "recall": 0.999,
             "interventions_per_100_frames": 0.5}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- qa_check:begin -->\n<!-- qa_check:end -->\n")
    run = _run("--results", str(runs), "--block", "qa_check", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in readme.read_text().splitlines()
            if ln.startswith(("| a_", "| b_"))]
    assert rows == [["a_current", "synthetic_rats", "0.45", "[0.6, 1.5]", "0.1", "1", "15", "1000", "0.910", "0",
                     "0.999", "0.5"],
                    ["b_candidate", "synthetic_rats", "0.45", "[0.6, 1.5]", "0.2", "1", "15", "1000", "0.909", "0",
                     "0.999", "0.5"]]
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _run("--results", str(empty), "--block", "qa_check", "--readme", str(readme))
    assert refused.returncode != 0 and "label_quality.json" in refused.stderr


def _bench_review_report(web_median: float, queue_median: float) -> dict:
    def stats(median: float, p90: float) -> dict:
        return {"median": median, "mean": median, "p90": p90, "max": p90}

    return {"data": "synthetic_rats quick (320x240)", "frames": 40, "image_size": 320,
            "checkpoint": "/runs/student/sam_finetune.pt", "extra_overrides": ["qa.size_ratio=[0.99,1.01]"], "cpus": 2,
            "load_average": {"start": [3.4937, 3.9, 3.6], "end": [4.1133, 4.0, 3.7]},
            "web": {"client": "browser", "per_question": [{}] * 34,
                    "summary": {"total_s": stats(web_median, 0.3928), "compute_s": stats(0.2188, 0.37),
                                "page_http_s": stats(0.0178, 0.02)}},
            "queue": {"per_question": [{}] * 3, "summary": {"wait_s": stats(queue_median, 20.8582)}},
            "ratio_queue_to_web": {"median": queue_median / web_median, "p90": 20.8582 / 0.3928},
            "target_s": 0.5}


def test_a_bench_review_block_shows_both_paths_their_ratio_the_split_and_the_load(tmp_path: Path) -> None:
    results = tmp_path / "bench_review.json"
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench_review:begin -->\nold 27 s\n<!-- bench_review:end -->\nafter\n")
    results.write_text(json.dumps(_bench_review_report(0.2358, 9.1724)))
    run = _run("--results", str(results), "--block", "bench_review", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old 27 s" not in text and text.startswith("before\n")
    assert text.endswith("<!-- bench_review:end -->\nafter\n")
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith("| `prompts=")]
    assert [r[1:] for r in rows] == [["0.236", "0.393", "34", "1"], ["9.172", "20.858", "3", "38.9"]]
    assert "headless Chromium" in rows[0][0] and "answers.json" in rows[1][0]
    assert "compute between the questions 0.219 s, page + HTTP 0.018 s; meets the 0.5 s target" in text
    assert "sam_finetune.pt, overrides `qa.size_ratio=[0.99,1.01]`; load average 3.49 -> 4.11 on 2 CPUs" in text
    assert "sha256" in text and "bench_review.json" in text
    results.write_text(json.dumps(_bench_review_report(0.61, 9.1724)))  # a slower page misses the target
    assert _run("--results", str(results), "--block", "bench_review", "--readme", str(readme)).returncode == 0
    assert "misses the 0.5 s target" in readme.read_text() and "| 15.0 " in readme.read_text()


def _annotate_row(path: str, frames: int, fps: float, iou: float, rss: float, sha: str = "same") -> dict:
    return {"encoder": "tiny_vit_5m", "path": path, "frames": frames, "fps": fps, "cpu_per_wall": 0.98,
            "peak_rss_mb": rss, "mean_box_iou": iou, "labels_sha256": sha,
            "load_average": {"start": [3.25, 3.0, 2.9], "end": [3.5, 3.1, 3.0]}}


def _bench_annotate_report(overlap_fps: float) -> dict:
    rows = [_annotate_row("inline", 40, 0.25, 0.9069, 950.4), _annotate_row("overlap", 40, overlap_fps, 0.9069, 960.2),
            _annotate_row("overlap", 1200, 6.1, 0.9087, 1000.9), _annotate_row("inline+passive", 300, 5.6, 0.91, 951),
            _annotate_row("overlap+passive", 300, 6.2, 0.9112, 955, sha="other")]
    comparisons = [
        {"encoder": "tiny_vit_5m", "path": "overlap", "baseline": "inline", "frames": 40, "speedup": overlap_fps / 0.25,
         "box_iou_diff": 0.0, "labels_identical": True},
        {"encoder": "tiny_vit_5m", "path": "overlap+passive", "baseline": "inline+passive", "frames": 300,
         "speedup": 6.2 / 5.6, "box_iou_diff": 0.0012, "labels_identical": False}]
    return {"data": "synthetic_rats quick", "image_size": 320, "checkpoint": "/runs/student/sam_finetune.pt",
            "encoders": ["tiny_vit_5m"], "cpus": 2, "load_average": {"start": [3.25, 3, 3], "end": [4.5, 4, 4]},
            "notes": "shared with a study run", "rows": rows, "comparisons": comparisons, "rss_limit": 1.2,
            "rss_growth": [{"encoder": "tiny_vit_5m", "path": "overlap", "short": 40, "long": 1200, "ratio": 1.0424}]}


def test_a_bench_annotate_block_puts_each_path_beside_todays_loop_with_memory_targets_and_load(tmp_path: Path) -> None:
    results = tmp_path / "bench_annotate.json"
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- bench_annotate:begin -->\nold 7.5 frames/s\n<!-- bench_annotate:end -->\ny\n")
    results.write_text(json.dumps(_bench_annotate_report(5.81)))
    run = _run("--results", str(results), "--block", "bench_annotate", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old 7.5" not in text and text.startswith("x\n") and text.endswith("<!-- bench_annotate:end -->\ny\n")
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
            if ln.startswith(("| inline", "| overlap"))]
    assert [r[1:] for r in rows] == [
        ["40", "0.25", "-", "0.9069", "-", "-", "950", "0.98", "3.25"],
        ["40", "5.81", "23.24x vs inline", "0.9069", "+0.0000", "yes", "960", "0.98", "3.25"],
        ["1,200", "6.10", "-", "0.9087", "-", "-", "1,001", "0.98", "3.25"],
        ["300", "5.60", "-", "0.9100", "-", "-", "951", "0.98", "3.25"],
        ["300", "6.20", "1.11x vs inline+passive", "0.9112", "+0.0012", "no", "955", "0.98", "3.25"]]
    assert rows[0][0].startswith("inline (`read_ahead=0") and rows[4][0].endswith("`OMP_WAIT_POLICY=PASSIVE`")
    assert "overlap (`read_ahead=4 encode_ahead=true`) 1,200 / 40 frames 1.042" in text
    assert "box IoU within 0.01 of it: overlap (`read_ahead=4 encode_ahead=true`), 23.24x (box IoU +0.0000)" in text
    # the verdict comes from the pair whose OpenMP threads sleep: spinning under load made the plain ratio 23x
    assert ("`OMP_WAIT_POLICY=PASSIVE`, so that spinning under load does not decide the ratio): overlap "
            "(`read_ahead=4 encode_ahead=true`), `OMP_WAIT_POLICY=PASSIVE`, 1.11x (misses") in text
    assert "sam_finetune.pt; load average 3.25 -> 4.50 on 2 CPUs. shared with a study run." in text
    report = _bench_annotate_report(0.4)  # without a passive pair the plain ratio decides: a slower overlap misses
    report["comparisons"] = [c for c in report["comparisons"] if c["baseline"] == "inline"]
    results.write_text(json.dumps(report))
    assert _run("--results", str(results), "--block", "bench_annotate", "--readme", str(readme)).returncode == 0
    assert "encode_ahead=true`), 1.60x (box IoU +0.0000) (misses the 2x target)." in readme.read_text()
    report["comparisons"][0]["box_iou_diff"] = 0.02  # labels that moved more than --max-iou-diff don't count
    results.write_text(json.dumps(report))
    assert _run("--results", str(results), "--block", "bench_annotate", "--readme", str(readme)).returncode == 0
    assert "fastest path" not in readme.read_text()
    report = _bench_annotate_report(5.81)
    report["comparisons"][1]["speedup"] = 2.5  # a passive pair at 2.5x meets it
    results.write_text(json.dumps(report))
    assert _run("--results", str(results), "--block", "bench_annotate", "--readme", str(readme)).returncode == 0
    assert "PASSIVE`, 2.50x (meets the 2x target)" in readme.read_text()


def _encoder_row(model: str, runtime: str, ms: float, vs_teacher: float | None, vs_eager: float | None,
                 busy: bool = False) -> dict:
    row = {"model": model, "runtime": runtime, "median_ms": ms, "cpu_per_wall": 1.98, "loadavg_1m_before": 0.5,
           "contended": busy, "max_abs_diff_vs_eager": 9.5e-06 if vs_eager else None}
    if vs_teacher is not None:
        row["speedup_vs_teacher"] = vs_teacher
    if vs_eager is not None:
        row["speedup_vs_eager"] = vs_eager
    return row


def test_a_bench_encoders_block_gives_each_runtime_beside_vit_b_and_eager_and_the_targets(tmp_path: Path) -> None:
    report = {"256": {"teacher": _encoder_row("vit_b", "eager", 317.7, None, None),
                      "tiny_vit_5m": _encoder_row("tiny_vit_5m", "eager", 51.9, 6.12, None),
                      "tiny_vit_5m+onnxruntime": _encoder_row("tiny_vit_5m", "onnxruntime", 30.0, 10.6, 1.73)},
              "1024": {"teacher": _encoder_row("vit_b", "eager", 7356.0, None, None, busy=True),
                       "tiny_vit_5m+onnxruntime": _encoder_row("tiny_vit_5m", "onnxruntime", 509.1, 14.45, 1.35)}}
    report["256"]["tiny_vit_5m+onnxruntime"]["mask_iou_vs_eager"] = {"mean": 0.99961, "min": 0.9979, "masks": 40,
                                                                     "frames": 20, "checkpoint": "student.pt"}
    results, readme = tmp_path / "bench.json", tmp_path / "README.md"
    results.write_text(json.dumps(report))
    readme.write_text("a\n<!-- bench_encoders:begin -->\nold\n<!-- bench_encoders:end -->\nb\n")
    run = _run("--results", str(results), "--block", "bench_encoders", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith("| 1024")
            or ln.startswith("| 256")]
    assert [r[:6] for r in rows] == [
        ["1024", "vit_b (teacher)", "7356.0", "1.0x", "-", "-"],
        ["1024", "tiny_vit_5m (onnxruntime)", "509.1", "14.4x", "1.35x", "9.5e-06"],
        ["256", "vit_b (teacher)", "317.7", "1.0x", "-", "-"],
        ["256", "tiny_vit_5m (eager)", "51.9", "6.1x", "-", "-"],
        ["256", "tiny_vit_5m (onnxruntime)", "30.0", "10.6x", "1.73x", "9.5e-06"]]
    assert rows[0][-1] == "yes" and rows[1][-1] == "no"  # a busy-CPU row is flagged
    assert rows[4][6] == "0.9996 (min 0.9979, 40 masks, trained weights)" and rows[1][6] == "-"
    assert "1024 px 14.4x (misses >= 15x); 256 px 10.6x (meets >= 10x)" in text and "old" not in text


def test_a_worked_example_block_puts_manual_and_samqa_side_by_side_with_targets_and_stage_minutes(
        tmp_path: Path) -> None:
    quality = {"frames": 750, "mean_box_iou": 0.8512, "recall": 0.99, "id_switches": 1}
    samqa = _row("SAM-QA", "sleap_clip", 89.4) | {"interventions_per_100_frames": 3.2,
                                                  "label_quality": {"sleap_clip-train": quality},
                                                  "models": {"sam_finetune": {"val/iou": 0.812}}}
    manual = _row("Manual annotation", "sleap_clip", 92.8) | {
        "annotator": "manual", "interventions_per_100_frames": 100.0,
        "label_quality": {"sleap_clip-train": {**quality, "mean_box_iou": 1.0, "id_switches": 0}}}
    run_dir = tmp_path / "multirun"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps([manual, samqa]))
    # the samqa job read its student from the cache (made by an earlier run): it counts once, with its own time
    stages = {"manual": {"annotate": {"key": "m", "wall_s": 6.0, "cached": False},
                         "detector": {"key": "dm", "wall_s": 420.0, "cached": False},
                         "detect": {"key": "tm", "wall_s": 60.0, "cached": False}},
              "samqa": {"train_sam_finetune": {"key": "s", "wall_s": 480.0, "cached": True},
                        "annotate": {"key": "a", "wall_s": 180.0, "cached": False},
                        "detector": {"key": "ds", "wall_s": 420.0, "cached": False},
                        "detect": {"key": "ts", "wall_s": 60.0, "cached": False}},
              "again": {"train_sam_finetune": {"key": "s", "wall_s": 480.0, "cached": True}}}
    (run_dir / "runs.json").write_text(json.dumps([{"method": m, "stages": s} for m, s in stages.items()]))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- worked_example:begin -->\nold\n<!-- worked_example:end -->\n")
    run = _run("--results", str(run_dir / "results.json"), "--block", "worked_example", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "old" not in text
    assert "| SAM-QA            | 89.4   | 50.0   | 0.851 " in text and "| 1.000 " in text and "| 3.2 " in text
    assert "SAM-QA's tracker 3.4 IDF1 below the manual labels' (meets within 5)" in text
    assert "3.2 interventions per 100 frames (meets at most 5)" in text
    # every stage once: 6 + 420 + 60 + 480 + 180 + 420 + 60 s
    assert "the stages took 27.1 min in all (meets 30 min)" in text
    assert "model training 8.0, annotation 3.1, YOLOv8n 14.0, detection 2.0" in text and "(val/iou): 0.812" in text
    assert "2 stage(s) of this run came from the cache" in text
    # the tracker variants on the same detections follow the targets
    assert text.index("Tracker variants (same detections)") > text.index("Minutes per stage")
    assert "| SAM-QA            | sleap_clip | 89.4 " in text
    # both files are what the table was made from
    runs_text = (run_dir / "runs.json").read_text()
    (run_dir / "runs.json").write_text(runs_text.replace("480.0", "481.0"))
    before = text.split("sha256 ")[1][:12]
    assert _run("--results", str(run_dir / "results.json"), "--block", "worked_example",
                "--readme", str(readme)).returncode == 0
    assert readme.read_text().split("sha256 ")[1][:12] != before


def test_a_worked_example_seeds_block_gives_mean_and_sd_over_seeds_without_stage_minutes(tmp_path: Path) -> None:
    quality = {"frames": 750, "mean_box_iou": 0.9, "recall": 1.0, "id_switches": 0}
    samqa = _row("SAM-QA", "sleap_clip", 80.0, sd=1.5) | {"seeds": [0, 1, 2], "interventions_per_100_frames": 0.1,
                                                          "label_quality": {"t": quality}}
    manual = _row("Manual annotation", "sleap_clip", 82.0, sd=3.0) | {"annotator": "manual", "seeds": [0, 1, 2],
                                                                       "label_quality": {"t": quality}}
    samqa["variants"]["all_fixes"] = {"IDF1": 81.0, "IDF1_sd": 0.5, "HOTA": 60.0, "HOTA_sd": 0.25}
    run_dir = tmp_path / "seeds"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps([manual, samqa]))
    (run_dir / "runs.json").write_text(json.dumps([{"method": "samqa", "stages": {
        "detector": {"key": "d", "wall_s": 4000.0, "cached": False}}}]))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- worked_example_seeds:begin -->\nold\n<!-- worked_example_seeds:end -->\n")
    run = _run("--results", str(run_dir / "results.json"), "--block", "worked_example_seeds", "--readme", str(readme))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert "| 82.0 ± 3.0 " in text
    assert "Targets (mean ± sd over detector seeds 0, 1, 2): SAM-QA's tracker 2.0 IDF1 below" in text
    assert "min in all" not in text and "Minutes per stage" not in text
    assert "81.0 ± 0.5" in text  # the all_fixes variant, with its sd
