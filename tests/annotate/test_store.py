from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.store import LabelStore
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
