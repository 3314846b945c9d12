from __future__ import annotations

from pathlib import Path

from samqa_framework.study.demo import demo
from samqa_framework.track.bytetrack import ByteTrack


def test_demo_runs_end_to_end_and_noise_lowers_scores(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("demo", ["data.size=tiny", "data.sizes.tiny.eval_frames=[60,60]", "logger=csv",
                               f"paths.dataset_dir={tmp_path}/data", "tracker.box_source=detection"])
    combined = demo(cfg)
    assert list(combined) == ["perfect", "good", "fair", "poor"]
    assert combined["perfect"]["DetA"] > 95  # exact boxes reported as detected
    assert combined["poor"]["HOTA"] < combined["perfect"]["HOTA"] - 10
    assert combined["poor"]["IDF1"] < combined["perfect"]["IDF1"]
    out = Path(cfg.paths.output_dir)
    assert (out / "demo_idf1_hota.png").stat().st_size > 10_000
    assert "| perfect" in (out / "demo.md").read_text()
    assert (out / "metrics" / "poor" / "metrics.json").is_file()
    assert ByteTrack.load_yaml(out / "tracker.yaml") == ByteTrack(box_source="detection")  # the settings used
    assert sorted(p.name for p in (out / "tracks" / "good").iterdir()) == ["synthetic_rats-eval1.txt",
                                                                          "synthetic_rats-eval2.txt"]
