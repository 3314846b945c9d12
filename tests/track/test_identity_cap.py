from __future__ import annotations

import dataclasses

import numpy as np

from samqa_framework.data.mot import MotTable
from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_tables
from samqa_framework.track.bytetrack import ByteTrack
from samqa_framework.track.identity_cap import cap_identities
from samqa_framework.track.simulated_detector import SimulatedDetector

SIZE = (320, 160)


def rows(track_id: int, frames: range, x: float, y: float = 50.0) -> MotTable:
    """A still 10x10 box centred at (x, y) for the given frames."""
    n = len(frames)
    return MotTable(np.array(frames), np.full(n, track_id), np.tile([x - 5, y - 5, 10, 10], (n, 1)))


def ids_at(table: MotTable, frame: int) -> dict[float, int]:
    """{box centre x: id} in one frame."""
    r = table.rows_of(frame)
    return {float(b[0] + b[2] / 2): int(t) for b, t in zip(r.box, r.track_id, strict=True)}


def tunnel_gt(frames: int = 80, gap: tuple[int, int] = (30, 50)) -> MotTable:
    """Animal 1 walks along the top lane; animal 2 walks the bottom lane, is out of sight during ``gap`` and
    comes out 100 px further on than where it went in (ByteTrack cannot bridge that: no IoU with its track)."""
    t = np.arange(1, frames + 1)
    a = np.stack([10 + 2 * t, np.full(frames, 20.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)
    seen = (t < gap[0]) | (t >= gap[1])
    xb = 10 + 1.5 * t + np.where(t >= gap[1], 100, 0)
    b = np.stack([xb, np.full(frames, 110.0), np.full(frames, 30.0), np.full(frames, 20.0)], 1)[seen]
    return MotTable(np.r_[t, t[seen]], np.r_[np.ones(frames), np.full(seen.sum(), 2)], np.vstack([a, b]))


def test_cap_at_the_animal_count_mends_the_broken_track() -> None:
    gt = tunnel_gt()
    det = SimulatedDetector(jitter=0, miss_rate=0, false_positives=0, score_range=(0.95, 0.99))
    tracker = ByteTrack(box_source="detection")
    res = {}
    for cap in (None, 2):
        pred = dataclasses.replace(tracker, max_ids=cap).track(det.detections(gt, 80, SIZE), SIZE)
        res[cap] = (len(pred.ids), evaluate_tables({"s": gt}, {"s": pred}, {"s": 80})[COMBINED])
    assert res[None][0] == 3 and res[2][0] == 2  # without the cap animal 2 comes out of the tunnel as a new id
    assert res[None][1]["IDF1"] < 90
    # not 100: a new track is only reported from its second frame (ByteTrack confirms it first)
    assert res[2][1]["IDF1"] > 99 and res[2][1]["IDSW"] == 0


def test_no_change_below_the_cap() -> None:
    table = MotTable.concat([rows(1, range(1, 6), 0), rows(4, range(8, 12), 50)])
    capped = cap_identities(table, 3)
    assert np.array_equal(capped.track_id, table.track_id) and np.array_equal(capped.box, table.box)


def test_two_reappearances_are_paired_by_least_total_distance() -> None:
    # 1 was last at x=0, 2 at x=100; both come back in frame 11 as 3 (x=60) and 4 (x=95). Nearest-first in id
    # order would give 3 -> 2 (40 px) and leave 4 -> 1 (95 px); the Hungarian pairing 3 -> 1, 4 -> 2 costs 65.
    table = MotTable.concat([rows(1, range(1, 6), 0), rows(2, range(1, 6), 100),
                             rows(3, range(11, 15), 60), rows(4, range(11, 15), 95)])
    capped = cap_identities(table, 2)
    assert ids_at(capped, 11) == {60.0: 1, 95.0: 2}
    assert ids_at(capped, 14) == {60.0: 1, 95.0: 2}  # the mapping holds for the track's life
    assert sorted(capped.ids) == [1, 2] and len(capped) == len(table)


def test_new_track_with_every_identity_present_keeps_a_fresh_id() -> None:
    table = MotTable.concat([rows(1, range(1, 11), 0), rows(2, range(1, 11), 100), rows(3, range(5, 8), 50)])
    capped = cap_identities(table, 2)
    assert len(capped) == len(table)  # nothing dropped
    assert ids_at(capped, 6) == {0.0: 1, 100.0: 2, 50.0: 3}


def test_a_returning_track_whose_identity_was_taken_gets_a_new_one() -> None:
    # 3 takes lost identity 1 in frame 6; then track 1 itself comes back while 1 (held by 3) and 2 are present:
    # it may not reuse id 1 (two rows with one id in a frame), so it gets an id above every tracker id.
    table = MotTable.concat([rows(1, range(1, 4), 0), rows(2, range(1, 12), 100), rows(3, range(6, 12), 10),
                             rows(1, range(9, 12), 200)])
    capped = cap_identities(table, 2)
    assert ids_at(capped, 6) == {10.0: 1, 100.0: 2}
    assert ids_at(capped, 10) == {10.0: 1, 100.0: 2, 200.0: 4}
    pairs = set(zip(capped.frame.tolist(), capped.track_id.tolist(), strict=True))
    assert len(pairs) == len(capped)  # one row per (frame, id)


def test_a_track_that_returns_after_its_identity_was_taken_never_duplicates_an_id() -> None:
    """Identity 2 passes from track 2 to track 3 and then to track 5; track 3 comes back while 5 lives: it must
    get an id of its own (one frame never holds an id twice), and 5 keeps identity 2."""
    table = MotTable.concat([rows(1, range(1, 40), 10.0), rows(2, range(1, 10), 100.0),
                             rows(3, range(12, 20), 150.0), rows(5, range(22, 40), 200.0),
                             rows(3, range(25, 40), 250.0)])
    table = table.select(np.argsort(table.frame, kind="stable"))
    out = cap_identities(table, 2)
    for frame in range(1, 40):
        ids = out.rows_of(frame).track_id.tolist()
        assert len(ids) == len(set(ids)), f"frame {frame}: {ids}"
    assert ids_at(out, 15) == {10.0: 1, 150.0: 2}
    assert ids_at(out, 30) == {10.0: 1, 200.0: 2, 250.0: 3}
