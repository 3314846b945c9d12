"""The exported label set: labels.txt, masks.jsonl and frames.txt written from the store, read back checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.label_set import LabelSetWriter, read_frames, read_label_set, write_frames
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.mot import read_mot
from samqa_framework.data.rle import decode, iter_masks
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.errors import DataFormatError
from tests.annotate.helpers import stored_labels


def test_export_round_trip_through_the_store(tmp_path: Path) -> None:
    store = LabelStore(tmp_path, {"method": "x"})
    for labels in (stored_labels(1), FrameLabels(2, labelled=False), stored_labels(3), FrameLabels(4)):
        store.append(labels)
    with LabelSetWriter(tmp_path) as export:
        for labels in store.records():
            export.add(labels)
    table = read_mot(export.labels_path)
    assert table.frame.tolist() == [1, 1, 3, 3] and table.track_id.tolist() == [1, 2, 1, 2]
    np.testing.assert_allclose(table.box[table.track_id == 2][0], [10, 1, 5, 5])
    np.testing.assert_allclose(table.conf, [0.9, 0.5, 0.9, 0.5])
    masks = dict(iter_masks(export.masks_path))
    assert sorted(masks) == [1, 3, 4] and masks[4] == {}  # frame 4: labelled empty; frame 2: skipped
    assert set(masks[1]) == {1}  # a box-only instance has no mask
    np.testing.assert_array_equal(decode(masks[3][1]), stored_labels(3).instances[0].mask)
    assert read_frames(tmp_path / "frames.txt", 4) == [1, 3, 4]


def test_a_failed_export_leaves_the_previous_one(tmp_path: Path) -> None:
    with LabelSetWriter(tmp_path) as export:
        export.add(stored_labels(1))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError), LabelSetWriter(tmp_path) as export:
        export.add(stored_labels(1))
        export.add(stored_labels(2))
        raise RuntimeError("crash in the middle of an export")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("text, message, line", [
    ("1\n3\nfive\n", "not a frame number: 'five'", 3),
    ("1\n\n41\n", r"frame 41 is outside the sequence's frames 1\.\.40", 3),
    ("0\n", r"frame 0 is outside", 1),
    ("2\n5\n5\n", "frame 5 after frame 5", 3),
    ("2\n7\n5\n", "frame 5 after frame 7", 3),
])
def test_bad_frames_txt_names_file_and_line(tmp_path: Path, text: str, message: str, line: int) -> None:
    path = tmp_path / "frames.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_frames(path, 40)
    assert err.value.path == str(path) and err.value.line == line


def test_frames_txt_round_trip(tmp_path: Path) -> None:
    write_frames(tmp_path / "frames.txt", [1, 6, 40])
    assert read_frames(tmp_path / "frames.txt", 40) == [1, 6, 40]
    write_frames(tmp_path / "frames.txt", [])
    assert read_frames(tmp_path / "frames.txt", 40) == []


@pytest.fixture
def manual_labels(tiny_rats: Path, tmp_path: Path):
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
    annotator = instantiate({"_target_": "samqa_framework.annotate.manual.ManualAnnotator", "every": 5})
    res = annotate_sequence(annotator, seq, tmp_path / "labels", progress=False)
    return seq, res.out_dir


def test_a_complete_label_set_reads_with_its_labelled_frames(manual_labels) -> None:
    seq, root = manual_labels
    ls = read_label_set(root, seq)
    assert ls.labelled == list(range(1, seq.info.seq_length + 1, 5))
    assert len(ls.boxes) > 0 and set(ls.boxes.frame.tolist()) <= set(ls.labelled)


def _box_outside(text: str) -> str:
    lines = text.splitlines(keepends=True)
    fields = lines[1].split(",")
    fields[2] = "165"  # the second box's left edge beyond the image's right border (160 px)
    lines[1] = ",".join(fields)
    return "".join(lines)


@pytest.mark.parametrize("name, edit, message, line", [
    ("labels.jsonl", lambda t: "".join(t.splitlines(keepends=True)[:10]), r"stop at frame 10 of 40", None),
    ("labels.txt", lambda t: "", "empty label set", None),
    ("frames.txt", lambda t: "1\n", r"frame 6 has boxes but is not in frames\.txt", None),
    ("frames.txt", None, "missing: the list of labelled frames", None),
    ("labels.txt", None, "missing: no labels were exported", None),
    # every box of a checked label set reaches into its image, so the YOLO export keeps each one
    ("labels.txt", _box_outside, "outside the 160x120 image", 2),
])
def test_broken_label_sets_are_refused_naming_file_and_line(manual_labels, tmp_path: Path, name: str, edit,
                                                            message: str, line: int | None) -> None:
    seq, root = manual_labels
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    path = broken / name
    if edit is None:
        path.unlink()
    else:
        path.write_text(edit(path.read_text()))
    want = broken / ("labels.txt" if name == "frames.txt" and edit is not None else name)
    with pytest.raises(DataFormatError, match=message) as err:
        read_label_set(broken, seq)
    assert (err.value.path, err.value.line) == (str(want), line)


def test_a_store_longer_than_max_frames_exports_its_first_frames(manual_labels, tmp_path: Path) -> None:
    seq, root = manual_labels
    short = tmp_path / "short"
    shutil.copytree(root, short)
    annotator = instantiate({"_target_": "samqa_framework.annotate.manual.ManualAnnotator", "every": 5})
    result = annotate_sequence(annotator, seq, short, max_frames=20, progress=False)
    assert result.frames == 20 and len(list(LabelStore.read(short).records())) == 40
    assert read_label_set(short, seq, max_frames=20).labelled == [1, 6, 11, 16]
