from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from ultralytics.engine.results import Boxes
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.trackers.track import TRACKER_MAP
from ultralytics.utils import YAML, IterableSimpleNamespace
from ultralytics.utils.checks import check_yaml

from samqa_framework.data.mot import MotTable
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_tables
from samqa_framework.track.bytetrack import ByteTrack
from samqa_framework.track.simulated_detector import SimulatedDetector
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR, instantiate_node

PERFECT = {"jitter": 0, "miss_rate": 0, "false_positives": 0, "score_range": (0.95, 0.99)}


def two_walkers(frames: int = 60) -> MotTable:
    """Two boxes walking towards each other on parallel lanes (never overlapping)."""
    t = np.arange(1, frames + 1)
    a = np.stack([20 + 2 * t, np.full(frames, 30.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)
    b = np.stack([200 - 2 * t, np.full(frames, 120.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)
    return MotTable(np.r_[t, t], np.r_[np.ones(frames), np.full(frames, 2)], np.vstack([a, b]))


@pytest.fixture
def tracker(compose_cfg) -> ByteTrack:
    cfg = compose_cfg("demo")
    assert cfg.tracker.track_buffer == 120 and cfg.tracker.match_thresh == 0.9  # the paper's parameters
    return instantiate(cfg.tracker)


def yaml_node(**extra) -> DictConfig:
    return OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "tracker" / "bytetrack.yaml"), extra)


def test_config_builds_the_paper_setting(tracker: ByteTrack) -> None:
    assert tracker == ByteTrack()  # the constructor's defaults are the yaml's (the paper's) values
    assert dataclasses.asdict(tracker) == {"track_high_thresh": 0.5, "track_low_thresh": 0.1, "new_track_thresh": 0.9,
                                "match_thresh": 0.9, "track_buffer": 120, "fuse_score": False,
                                "box_source": "kalman", "max_ids": None, "nms_iou": None}
    assert tracker.ultralytics_args() == {"tracker_type": "bytetrack", "track_high_thresh": 0.5,
                                          "track_low_thresh": 0.1, "new_track_thresh": 0.9, "match_thresh": 0.9,
                                          "track_buffer": 120, "fuse_score": False}
    with pytest.raises(dataclasses.FrozenInstanceError):  # read-only: variants are copies (dataclasses.replace)
        tracker.max_ids = 2


def test_unknown_key_in_a_tracker_config_names_it() -> None:
    with pytest.raises(ConfigError) as info:
        instantiate_node(OmegaConf.create({"tracker": yaml_node(trak_buffer=3)}), "tracker")
    assert info.value.key == "tracker.trak_buffer"
    assert "unknown key; known keys: track_high_thresh" in str(info.value) and "max_ids" in str(info.value)


@pytest.mark.parametrize("key,value", [("track_high_thresh", 1.5), ("track_low_thresh", -0.1),
                                       ("match_thresh", "high"), ("new_track_thresh", True),
                                       ("track_low_thresh", 0.6), ("track_buffer", 0), ("track_buffer", 2.5),
                                       ("fuse_score", "yes"), ("box_source", "kalmann"), ("max_ids", 0),
                                       ("max_ids", 1.5), ("nms_iou", 0.0), ("nms_iou", 1.2)])
def test_out_of_range_values_name_the_key(key: str, value) -> None:
    with pytest.raises(ConfigError) as info:
        ByteTrack(**{key: value})
    assert info.value.key == key  # the argument; a config names it under its node (tracker.<key>)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}'")):
        dataclasses.replace(ByteTrack(), **{key: value})  # a variant is checked the same way


def test_replace_builds_the_study_variants(tracker: ByteTrack) -> None:
    capped = dataclasses.replace(tracker, max_ids=2)
    assert capped.max_ids == 2 and tracker.max_ids is None  # a copy; the original is unchanged
    assert dataclasses.asdict(dataclasses.replace(capped, box_source="detection")) == {
        **dataclasses.asdict(tracker), "max_ids": 2, "box_source": "detection"}
    with pytest.raises(ConfigError, match=r"'trak_buffer': unknown key"):
        ByteTrack.from_config(**{**dataclasses.asdict(tracker), "trak_buffer": 3})


def test_nms_iou_drops_a_second_box_on_one_animal(tracker: ByteTrack) -> None:
    """Two detections per animal (a 30x20 box and a 36x26 one around it, IoU 0.64: both survive a detector's NMS at
    0.7): ByteTrack alone keeps two tracks on each animal."""
    gt = two_walkers()
    clean = SimulatedDetector(jitter=0, miss_rate=0, false_positives=0, score_range=(0.95, 0.99))

    def doubled():
        for frame, det in clean.detections(gt, 60, (256, 160)):
            loose = det.copy()
            loose[:, :2] -= 3
            loose[:, 2:4] += 3
            loose[:, 4] -= 0.02
            yield frame, np.vstack([det, loose])

    plain = tracker.track(doubled(), (256, 160))
    dedup = dataclasses.replace(tracker, nms_iou=0.5).track(doubled(), (256, 160))
    assert len(plain.ids) == 4 and len(dedup.ids) == 2
    m = evaluate_tables({"s": gt}, {"s": dedup}, {"s": 60})[COMBINED]
    assert m["IDF1"] > 99


def test_save_yaml_round_trips_through_ultralytics(tracker: ByteTrack, tmp_path: Path) -> None:
    variant = dataclasses.replace(tracker, max_ids=2, box_source="detection")
    path = variant.save_yaml(tmp_path / "tracker.yaml")
    # what ultralytics.trackers.track.on_predict_start does with model.track(tracker=path)
    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(str(path))))
    assert cfg.tracker_type in TRACKER_MAP
    bt = TRACKER_MAP[cfg.tracker_type](args=cfg)
    assert isinstance(bt, BYTETracker) and bt.max_frames_lost == 120
    assert {k: getattr(cfg, k) for k in variant.ultralytics_args()} == variant.ultralytics_args()
    out = bt.update(Boxes(np.array([[10, 10, 40, 30, 0.95, 0]], np.float32), (160, 256)))
    assert len(out) == 1  # the first frame's confident box starts a track
    assert ByteTrack.load_yaml(path) == variant  # our two keys come back too
    text = path.read_text()
    assert text.index("fuse_score") < text.index("# samqa-framework's own keys") < text.index("box_source")


def test_load_yaml_reads_ultralytics_own_defaults() -> None:
    import ultralytics

    own = ByteTrack.load_yaml(Path(ultralytics.__file__).parent / "cfg" / "trackers" / "bytetrack.yaml")
    assert own.track_buffer == 30 and own.fuse_score is True and own.box_source == "kalman"


def test_bytetrack_on_perfect_detections_keeps_identities(tracker: ByteTrack) -> None:
    gt = two_walkers()
    det = SimulatedDetector(**PERFECT)
    pred = tracker.track(det.detections(gt, 60, (256, 160)), (256, 160))
    assert len(pred.ids) == 2
    m = evaluate_tables({"s": gt}, {"s": pred}, {"s": 60})[COMBINED]
    assert m["IDF1"] > 99 and m["IDSW"] == 0


def test_each_track_call_starts_a_fresh_tracker(tracker: ByteTrack) -> None:
    gt = two_walkers()
    det = SimulatedDetector(**PERFECT)
    first = tracker.track(det.detections(gt, 60, (256, 160)), (256, 160))
    second = tracker.track(det.detections(gt, 60, (256, 160)), (256, 160))
    assert np.array_equal(first.track_id, second.track_id) and np.allclose(first.box, second.box)


def test_box_source_detection_reports_the_detected_boxes(tracker: ByteTrack) -> None:
    gt = two_walkers()
    det = SimulatedDetector(**PERFECT)
    res = {}
    for source in ("kalman", "detection"):
        pred = dataclasses.replace(tracker, box_source=source).track(det.detections(gt, 60, (256, 160)),
                                                                     (256, 160))
        assert len(pred.ids) == 2
        res[source] = (pred, evaluate_tables({"s": gt}, {"s": pred}, {"s": 60})[COMBINED])
    pred, m = res["detection"]
    gt_rows = {(f, b.tobytes()) for f, b in zip(gt.frame, gt.box.astype(np.float32), strict=True)}
    assert all((f, b.tobytes()) in gt_rows for f, b in zip(pred.frame, pred.box.astype(np.float32), strict=True))
    assert m["LocA"] > 99.9 and m["HOTA"] > 99
    kalman_pred, km = res["kalman"]
    assert not np.allclose(kalman_pred.box, pred.box)  # the filter's boxes differ from the detections
    assert km["LocA"] < m["LocA"]


def test_bytetrack_bridges_short_gaps_but_noise_costs_score(tracker: ByteTrack) -> None:
    gt = two_walkers()
    clean = SimulatedDetector(**PERFECT)
    noisy = SimulatedDetector(jitter=0.15, miss_rate=0.3, false_positives=0.5, seed=3)
    res = {}
    for name, det in (("clean", clean), ("noisy", noisy)):
        pred = tracker.track(det.detections(gt, 60, (256, 160)), (256, 160))
        res[name] = evaluate_tables({"s": gt}, {"s": pred}, {"s": 60})[COMBINED]
    assert res["noisy"]["HOTA"] < res["clean"]["HOTA"] - 5
    assert res["noisy"]["DetA"] < res["clean"]["DetA"]


def test_simulated_detector_is_deterministic_and_respects_rates() -> None:
    gt = two_walkers(200)
    a = list(SimulatedDetector(miss_rate=0.5, seed=1).detections(gt, 200, (256, 160)))
    b = list(SimulatedDetector(miss_rate=0.5, seed=1).detections(gt, 200, (256, 160)))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    kept = sum(len(d) for _, d in a)
    assert 0.35 * 400 < kept < 0.65 * 400 + 0.02 * 200 * 3
    with pytest.raises(ValueError, match="miss_rate"):
        SimulatedDetector(miss_rate=1.5)


def test_a_zero_explains_itself_with_the_detections_figures() -> None:
    paper = ByteTrack()  # new_track_thresh 0.9, track_high_thresh 0.5
    low = paper.diagnose(np.array([0.2, 0.25, 0.3, 0.6]), tracks=0)
    assert low["why"] == "no track started: no detection >= new_track_thresh 0.9 (max conf 0.60, median 0.28)"
    assert low["detections"] == 4 and low["share_new_track"] == 0.0 and low["share_high"] == 0.25
    assert paper.diagnose(np.zeros(0), tracks=0)["why"] == "no detection on the evaluation videos"
    assert paper.diagnose(np.array([0.95, 0.1, 0.1]), tracks=0)["why"] == (
        "no track started: 1 detection >= new_track_thresh 0.9, none matched again in the next frame "
        "(max conf 0.95, median 0.10)")
    late = paper.diagnose(np.r_[np.full(199, 0.7), 0.95], tracks=2)["why"]
    assert late.startswith("tracks start late: 0.5% of detections >= new_track_thresh 0.9")
    assert "second association" in paper.diagnose(np.r_[np.full(10, 0.3), np.full(5, 0.95)], tracks=3)["why"]
    healthy = dataclasses.replace(paper, new_track_thresh=0.5).diagnose(np.full(50, 0.8), tracks=2)
    assert healthy["why"] is None and healthy["share_new_track"] == 1.0
