"""Your own video with labels from another tool: data=labelled_video (COCO, Label Studio, DeepLabCut)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from samqa_framework.data import rle
from samqa_framework.data.formats.coco import write_coco
from samqa_framework.data.formats.labels import Annotation, SequenceLabels
from samqa_framework.data.label_import import LabelImporter
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError, DataFormatError
from tests.data.test_video_import import write_frames, write_video


def _coco(path: Path, frames: dict[int, list[Annotation]], name: str = "clip", size: tuple[int, int] = (64, 48)
          ) -> Path:
    return write_coco(path, [SequenceLabels(name, *size, frames)], lambda s, f: f"frame_{f - 1}.png")


def test_labels_become_each_splits_ground_truth(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mp4", 20)
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:25] = True
    frames = {3: [Annotation(1, [5, 10, 20, 10], rle.encode(mask)), Annotation(2, [50, 30, 30, 30])],
              15: [Annotation(2, [70, 0, 5, 5])],  # wholly outside the 64x48 frame: left out
              16: [Annotation(1, [1, 1, 4, 4])]}
    coco = _coco(tmp_path / "clip.json", frames)
    manifest = LabelImporter(str(tmp_path / "clip.mp4"), str(coco), "coco",
                             splits={"train": [0, 10], "eval": [10, None]}).build(tmp_path / "out")
    assert manifest.num_animals == 2 and manifest.train == ["clip-train"] and manifest.eval == ["clip-eval"]
    train, evaluate = Sequence(tmp_path / "out" / "clip-train"), Sequence(tmp_path / "out" / "clip-eval")
    gt = train.gt()
    assert gt.frame.tolist() == [3, 3] and gt.box.tolist() == [[5, 10, 20, 10], [50, 30, 14, 18]]  # clipped
    (frame, masks), = rle.iter_masks(train.masks_path)
    assert frame == 3 and np.array_equal(rle.decode(masks[1]), mask)
    assert evaluate.gt().frame.tolist() == [6] and not evaluate.has_masks()  # frame 16 is the eval split's 6th


def test_a_folder_of_frames_is_matched_by_file_name(tmp_path: Path) -> None:
    write_frames(tmp_path / "frames", 12, size=(64, 48))
    data = json.loads(_coco(tmp_path / "c.json", {8: [Annotation(4, [1, 2, 3, 4])]}).read_text())
    for img in data["images"]:
        del img["frame_id"], img["video_id"]  # a plain COCO file of frames: its file names say which frame
    (tmp_path / "c.json").write_text(json.dumps(data))
    LabelImporter(str(tmp_path / "frames"), str(tmp_path / "c.json"), "coco").build(tmp_path / "out")
    gt = Sequence(tmp_path / "out" / "frames-train").gt()
    assert gt.frame.tolist() == [8] and gt.track_id.tolist() == [4]  # frame_7.png is the 8th frame


def test_deeplabcut_h5_beside_its_video(tmp_path: Path) -> None:
    write_video(tmp_path / "mice.mp4", 10)
    columns = pd.MultiIndex.from_product([["me"], ["m1", "m2"], ["nose", "tail"], ["x", "y"]],
                                         names=["scorer", "individuals", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", "mice", "img03.png")])
    pd.DataFrame([[10, 10, 20, 30, 40, 5, 50, 9]], index=index, columns=columns, dtype=float).to_hdf(
        tmp_path / "CollectedData_me.h5", key="df_with_missing", mode="w")
    LabelImporter(str(tmp_path / "mice.mp4"), str(tmp_path / "CollectedData_me.h5"), "dlc", margin_frac=0,
                  margin_px=1).build(tmp_path / "out")
    gt = Sequence(tmp_path / "out" / "mice-train").gt()
    assert gt.frame.tolist() == [4, 4] and gt.box.tolist() == [[9, 9, 12, 22], [39, 4, 12, 6]]


def test_labels_that_do_not_fit_the_video_are_named(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mp4", 5)
    write_video(tmp_path / "b.mp4", 5)
    mask = rle.encode(np.ones((10, 10), bool))  # not the video's 64x48
    coco = _coco(tmp_path / "x.json", {1: [Annotation(1, [0, 0, 10, 10], mask)]})
    with pytest.raises(DataFormatError, match=r"clip frame 1: masks are 10x10, the video .*a\.mp4 is 64x48") as err:
        LabelImporter(str(tmp_path / "a.mp4"), str(coco), "coco").build(tmp_path / "out")
    assert err.value.path == str(coco)
    (tmp_path / "videos").mkdir()
    for v in ("a.mp4", "b.mp4"):
        (tmp_path / v).rename(tmp_path / "videos" / v)
    with pytest.raises(ConfigError, match=r"'labels'.*\['clip'\], none named like the source's videos \['a', 'b'\]"):
        LabelImporter(str(tmp_path / "videos"), str(coco), "coco").build(tmp_path / "out2")
    with pytest.raises(ConfigError, match="'format'"):
        LabelImporter(str(tmp_path / "videos"), str(coco), "csv")
    with pytest.raises(ConfigError, match="'labels'"):
        LabelImporter(str(tmp_path / "videos"), str(tmp_path / "missing.json"), "coco")
