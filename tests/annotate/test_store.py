from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.store import ANSWERS, LabelStore
from samqa_framework.data import rle
from samqa_framework.utils.errors import DataFormatError
from tests.annotate.helpers import stored_labels


def test_round_trip_and_torn_line(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {"method": "x"})
    for f in (1, 2, 3):
        store.append(stored_labels(f))
    with open(store.path, "a", encoding="utf-8") as fh:  # a crash in the middle of frame 4's write
        fh.write('{"frame": 4, "prompts": 0, "instan')
    reopened = LabelStore(tmp_path, {"method": "x"})
    got = list(reopened.records())
    assert [g.frame for g in got] == [1, 2, 3]
    for g in got:
        want = stored_labels(g.frame)
        np.testing.assert_array_equal(g.instances[0].mask, want.instances[0].mask)
        np.testing.assert_allclose(g.instances[0].box, want.instances[0].box)
        assert g.instances[1].mask is None and g.instances[1].source == "manual"
        assert (g.prompts, g.interventions) == (want.prompts, want.interventions)
    reopened.append(stored_labels(4))
    assert [g.frame for g in reopened.records()] == [1, 2, 3, 4]


def test_masks_are_decoded_only_when_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LabelStore(tmp_path, {})
    for f in (1, 2):
        store.append(stored_labels(f))
    decoded: list[object] = []
    real_decode = rle.decode
    monkeypatch.setattr(rle, "decode", lambda r: decoded.append(r) or real_decode(r))
    got = list(store.records())
    assert [i.has_mask for i in got[0].instances] == [True, False] and decoded == []
    assert got[0].instances[0].area == stored_labels(1).instances[0].area and decoded == []
    copy = LabelStore(tmp_path / "copy", {})
    for labels in got:
        copy.append(labels)  # the stored RLE is written back as it came
    assert copy.path.read_text() == store.path.read_text() and decoded == []
    np.testing.assert_array_equal(got[1].instances[0].mask, stored_labels(2).instances[0].mask)
    assert len(decoded) == 1


def test_a_bad_mask_record_names_the_line(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    store.append(stored_labels(1))
    store.append(stored_labels(2))
    lines = store.path.read_text().splitlines()
    store.path.write_text(lines[0] + "\n" + lines[1].replace('"size":[12,16]', '"size":"12x16"') + "\n")
    with pytest.raises(DataFormatError, match=r"labels.jsonl:2: bad label record .*not a COCO RLE"):
        list(store.records())


def test_another_config_is_refused_naming_the_difference(tmp_path: Path) -> None:
    LabelStore(tmp_path, {"method": "samqa", "qa": 0.1}).append(stored_labels(1))
    with pytest.raises(DataFormatError, match=r"store.json.*differs in qa"):
        LabelStore(tmp_path, {"method": "samqa", "qa": 0.2})


def test_frames_out_of_order_name_the_line(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    store.append(stored_labels(1))
    store.append(stored_labels(3))
    with pytest.raises(DataFormatError, match=r"labels.jsonl:2: frame 3 where frame 2 was expected"):
        list(store.records())


def test_answers_journal_survives_a_torn_line_and_the_last_answer_wins(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    store.append_answer(1, {2: np.array([1, 2, 3, 4.5]), 1: np.array([5, 6, 7, 8])}, by="person")
    with open(tmp_path / ANSWERS, "a", encoding="utf-8") as fh:  # killed in the middle of the next answer
        fh.write('{"frame": 9, "by": "per')
    assert list(store.answers()) == [1]
    store.append_answer(5, {1: np.array([0, 0, 2, 2])}, by="oracle")
    store.append_answer(1, {1: np.array([1, 1, 9, 9])}, by="person")
    answers = LabelStore(tmp_path, {}).answers()
    assert sorted(answers) == [1, 5]
    np.testing.assert_array_equal(answers[1][1], [1, 1, 9, 9])
    assert len((tmp_path / ANSWERS).read_text().splitlines()) == 3  # the torn line was cut, not glued to


def test_corrections_apply_in_order_and_leave_the_records_as_made(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {})
    for f in (1, 2, 3, 4):
        store.append(stored_labels(f))
    raw = store.path.read_bytes()
    store.append_correction({"op": "box", "frame": 3, "id": 1, "box": [1, 1, 5.5, 6]})
    store.append_correction({"op": "swap", "frame": 2, "ids": [1, 2]})
    store.append_correction({"op": "remove", "frame": 4, "id": 1})
    assert store.path.read_bytes() == raw
    got = {g.frame: {i.track_id: (i.box.tolist(), i.source, i.has_mask) for i in g.instances}
           for g in store.records(corrected=True)}
    first = stored_labels(1).instances[0].box.tolist()
    assert got[1] == {1: (first, "auto", True), 2: ([10, 1, 15, 6], "manual", False)}  # before the swap's frame
    assert got[2][2][1:] == ("auto", True) and got[2][1] == ([10, 1, 15, 6], "manual", False)
    assert got[3] == {1: ([10, 1, 15, 6], "manual", False), 2: ([1, 1, 5.5, 6], "manual", False)}  # fixed, swapped
    assert set(got[4]) == {2} and got[4][2][1] == "auto"  # id 1 (the former 2) removed on frame 4
    assert [i.track_id for i in store.record(3).instances] == [1, 2]
    assert store.record(3, corrected=True).by_id()[2].box.tolist() == [1, 1, 5.5, 6]
    assert store.record(5) is None and store.count() == 4


@pytest.mark.parametrize(("op", "reason"), [
    ({"op": "swap", "frame": 2, "ids": [1, 1]}, "two different identities"),
    ({"op": "box", "frame": 0, "id": 1, "box": [0, 0, 1, 1]}, "frame must be"),
    ({"op": "box", "frame": 1, "id": 1, "box": [3, 0, 1, 1]}, "not x1 < x2"),
    ({"op": "box", "frame": 1, "id": 1, "box": [0, 0, "1", 1]}, "numbers"),
    ({"op": "rename", "frame": 1}, "op must be one of"),
])
def test_a_bad_correction_is_refused_with_its_reason_and_not_journaled(tmp_path: Path, op: dict, reason: str) -> None:
    store = LabelStore(tmp_path, {})
    with pytest.raises(ValueError, match=reason):
        store.append_correction(op)
    assert store.corrections() == []


def test_a_second_writer_process_is_refused_at_once_and_after_close_may_resume(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom samqa_framework.annotate.store import LabelStore\n"
            "LabelStore(sys.argv[1], {'method': 'samqa'})\n")
    with LabelStore(tmp_path, {"method": "samqa"}) as store:
        store.append(stored_labels(1))
        run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             check=False)
        assert run.returncode != 0 and "LockedError" in run.stderr
        assert "this label store is being written by another process (pid" in run.stderr
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert [f.frame for f in LabelStore.read(tmp_path).records()] == [1]


def test_a_truncated_store_json_names_the_file(tmp_path: Path) -> None:
    LabelStore(tmp_path, {"method": "samqa"}).close()
    (tmp_path / "store.json").write_text('{"fingerprint": {"meth')
    with pytest.raises(DataFormatError, match=r"store.json: not a store.json"):
        LabelStore(tmp_path, {"method": "samqa"})
