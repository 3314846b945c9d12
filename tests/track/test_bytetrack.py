from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate

from samqa_framework.data.mot import MotTable
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_tables
from samqa_framework.track.runner import track_detections
from samqa_framework.track.simulated_detector import SimulatedDetector


def two_walkers(frames: int = 60) -> MotTable:
    """Two boxes walking towards each other on parallel lanes (never overlapping)."""
    t = np.arange(1, frames + 1)
    a = np.stack([20 + 2 * t, np.full(frames, 30.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)
    b = np.stack([200 - 2 * t, np.full(frames, 120.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)
    return MotTable(np.r_[t, t], np.r_[np.ones(frames), np.full(frames, 2)], np.vstack([a, b]))


@pytest.fixture
def tracker(compose_cfg):
    cfg = compose_cfg("demo")
    assert cfg.tracker.track_buffer == 120 and cfg.tracker.match_thresh == 0.9  # the paper's parameters
    return lambda: instantiate(cfg.tracker)


def test_bytetrack_on_perfect_detections_keeps_identities(tracker) -> None:
    gt = two_walkers()
    det = SimulatedDetector(jitter=0, miss_rate=0, false_positives=0, score_range=(0.95, 0.99))
    pred = track_detections(tracker(), det.detections(gt, 60, (256, 160)), (256, 160))
    assert len(pred.ids) == 2
    m = evaluate_tables({"s": gt}, {"s": pred}, {"s": 60})[COMBINED]
    assert m["IDF1"] > 99 and m["IDSW"] == 0


def test_bytetrack_bridges_short_gaps_but_noise_costs_score(tracker) -> None:
    gt = two_walkers()
    clean = SimulatedDetector(jitter=0, miss_rate=0, false_positives=0, score_range=(0.95, 0.99))
    noisy = SimulatedDetector(jitter=0.15, miss_rate=0.3, false_positives=0.5, seed=3)
    res = {}
    for name, det in (("clean", clean), ("noisy", noisy)):
        pred = track_detections(tracker(), det.detections(gt, 60, (256, 160)), (256, 160))
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
