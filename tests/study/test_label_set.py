from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra.utils import instantiate

from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.study.label_set import read_label_set
from samqa_framework.utils.errors import DataFormatError


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


def test_frames_missing_is_refused_naming_the_store(manual_labels, tmp_path: Path) -> None:
    seq, root = manual_labels
    cut = tmp_path / "cut"
    shutil.copytree(root, cut)
    lines = (cut / "labels.jsonl").read_text().splitlines(keepends=True)
    (cut / "labels.jsonl").write_text("".join(lines[:10]))
    with pytest.raises(DataFormatError, match=r"labels\.jsonl.*stop at frame 10 of 40"):
        read_label_set(cut, seq)


def test_empty_and_inconsistent_label_sets_are_refused(manual_labels, tmp_path: Path) -> None:
    seq, root = manual_labels
    empty = tmp_path / "empty"
    shutil.copytree(root, empty)
    (empty / "labels.txt").write_text("")
    with pytest.raises(DataFormatError, match=r"labels\.txt.*empty label set"):
        read_label_set(empty, seq)
    odd = tmp_path / "odd"
    shutil.copytree(root, odd)
    (odd / "frames.txt").write_text("1\n")
    with pytest.raises(DataFormatError, match=r"labels\.txt.*frame 6 has boxes but is not in frames\.txt"):
        read_label_set(odd, seq)
    (odd / "frames.txt").unlink()
    with pytest.raises(DataFormatError, match=r"frames\.txt.*missing"):
        read_label_set(odd, seq)


def test_export_keeps_labels_whatever_their_score(manual_labels, tmp_path: Path, compose_cfg) -> None:
    """A label's conf column is the method's score (SAM's IoU head can give negative ones), not a gt flag."""
    from samqa_framework.data.mot import read_mot, write_mot
    from samqa_framework.study.cache import StageResult
    from samqa_framework.study.pipeline import StudyJob

    seq, root = manual_labels
    boxes = read_mot(root / "labels.txt")
    boxes.conf[:] = -0.3
    write_mot(root / "labels.txt", boxes)
    cfg = compose_cfg("study", ["annotator=manual", f"study.cache_dir={tmp_path}/cache", "study.val_every=2"])
    annotation = StageResult("annotate", "k", root, {"sequences": {seq.name: {"labels_dir": str(root)}}}, 0.0, False)
    manifest = DatasetManifest.read(seq.root.parent)
    out = StudyJob(cfg).export(annotation, manifest, seq.root.parent)
    assert out.outputs["boxes"] == len(boxes) and out.outputs["images"] == 8
    assert len(list((out.dir / "labels" / "val").glob("*.txt"))) == 4
