from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.base import FrameLabels, Instance, instance_from_mask
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.mot import read_mot
from samqa_framework.data.rle import iter_masks
from samqa_framework.utils.errors import DataFormatError


def _labels(frame: int) -> FrameLabels:
    mask = np.zeros((12, 16), bool)
    mask[2:5 + frame % 3, 3:9] = True
    return FrameLabels(frame, [instance_from_mask(1, mask, 0.9, "auto"),
                               Instance(2, [10, 1, 15, 6], 0.5, "manual")], prompts=frame % 2, interventions=1)


def test_round_trip_torn_line_and_export(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {"method": "x"})
    for f in (1, 2, 3):
        store.append(_labels(f))
    with open(store.path, "a", encoding="utf-8") as fh:  # a crash in the middle of frame 4's write
        fh.write('{"frame": 4, "prompts": 0, "instan')
    reopened = LabelStore(tmp_path, {"method": "x"})
    got = list(reopened.records())
    assert [g.frame for g in got] == [1, 2, 3]
    for g in got:
        want = _labels(g.frame)
        np.testing.assert_array_equal(g.instances[0].mask, want.instances[0].mask)
        np.testing.assert_allclose(g.instances[0].box, want.instances[0].box)
        assert g.instances[1].mask is None and g.instances[1].source == "manual"
        assert (g.prompts, g.interventions) == (want.prompts, want.interventions)
    reopened.append(_labels(4))
    assert [g.frame for g in reopened.records()] == [1, 2, 3, 4]
    labels_txt, masks = reopened.export()
    table = read_mot(labels_txt)
    assert len(table) == 8 and set(table.track_id.tolist()) == {1, 2}
    np.testing.assert_allclose(table.box[table.track_id == 2][0], [10, 1, 5, 5])
    assert [f for f, _ in iter_masks(masks)] == [1, 2, 3, 4]
    assert all(set(m) == {1} for _, m in iter_masks(masks))  # box-only instances have no mask


def test_another_config_is_refused_naming_the_difference(tmp_path: Path) -> None:
    LabelStore(tmp_path, {"method": "samqa", "qa": 0.1}).append(_labels(1))
    with pytest.raises(DataFormatError, match=r"store.json.*differs in qa"):
        LabelStore(tmp_path, {"method": "samqa", "qa": 0.2})


def test_frames_out_of_order_name_the_line(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    store.append(_labels(1))
    store.append(_labels(3))
    with pytest.raises(DataFormatError, match=r"labels.jsonl:2: frame 3 where frame 2 was expected"):
        list(store.records())


def test_skipped_frames_are_left_out_of_the_export(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    store.append(_labels(1))
    store.append(FrameLabels(2, labelled=False))
    store.append(FrameLabels(3))
    store.export()
    assert (tmp_path / "frames.txt").read_text().split() == ["1", "3"]
