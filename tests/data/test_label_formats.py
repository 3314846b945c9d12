"""Label formats of other tools: each writer's output read back by its reader (same boxes, masks, identities), and
DeepLabCut's official layouts (CSV with three index columns, H5 as pandas writes it) read."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from samqa_framework.data import rle
from samqa_framework.data.formats.coco import read_coco, write_coco
from samqa_framework.data.formats.dlc import read_dlc
from samqa_framework.data.formats.labels import Annotation, FrameFiles, SequenceLabels
from samqa_framework.data.formats.labelstudio import label_config, read_labelstudio, write_labelstudio
from samqa_framework.utils.errors import DataFormatError

W, H = 80, 60


def _blob(cx: int, cy: int, ax: int, ay: int, angle: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (cx, cy), (ax, ay), angle, 0, 360, 1, -1)
    return mask.astype(bool)


def labels(name: str = "clip-train") -> SequenceLabels:
    """Three frames: two animals with masks, one animal box-only plus an empty (labelled) frame."""
    out = SequenceLabels(name, W, H)
    for frame, shift in ((1, 0), (2, 3)):
        anns = []
        for tid, (cx, cy) in ((3, (20 + shift, 20)), (7, (55, 35 - shift))):
            m = rle.encode(_blob(cx, cy, 9, 5, 30 * tid))
            anns.append(Annotation(tid, rle.bbox(m), m, 0.5 + 0.1 * tid / 7))
        out.frames[frame] = anns
    out.frames[4] = [Annotation(3, [10.5, 12.25, 20, 9])]
    out.frames[5] = []
    return out


def assert_same(back: SequenceLabels, ref: SequenceLabels, exact_masks: bool = True, frames: list[int] | None = None,
                scores: bool = True) -> None:
    assert list(back.frames) == (frames or list(ref.frames))
    for frame in back.frames:
        got = {a.track_id: a for a in back.frames[frame]}
        want = {a.track_id: a for a in ref.frames[frame]}
        assert set(got) == set(want), frame
        for tid, a in want.items():
            np.testing.assert_allclose(got[tid].box, a.box, atol=1e-6, err_msg=f"frame {frame} id {tid}")
            assert (got[tid].rle is None) == (a.rle is None)
            if a.rle is not None:
                if exact_masks:
                    assert np.array_equal(rle.decode(got[tid].rle), rle.decode(a.rle))
                else:
                    assert rle.iou(got[tid].rle, a.rle) > 0.99
            if scores:
                assert got[tid].score == pytest.approx(a.score)


# -- masks as polygons ------------------------------------------------------------------------------------


def test_a_mask_outline_rasterises_back_to_the_same_pixels() -> None:
    mask = _blob(40, 30, 15, 9, 30) | np.pad(np.ones((16, 8), bool), ((5, H - 21), (5, W - 13)))
    polys = rle.to_polygons(rle.encode(mask))
    assert len(polys) == 2 and len(polys[0]) < 80  # the larger part first, few vertices
    assert np.array_equal(rle.decode(rle.from_polygons(polys, H, W)), mask)


# -- COCO -------------------------------------------------------------------------------------------------


def test_coco_round_trip(tmp_path: Path) -> None:
    ref = [labels("a"), labels("b")]
    path = write_coco(tmp_path / "ann.json", ref, lambda seq, f: f"images/{seq}/{f:06d}.jpg", "rat")
    data = json.loads(path.read_text())
    assert data["categories"] == [{"id": 1, "name": "rat", "supercategory": "animal"}]
    ann = data["annotations"][0]
    assert ann["track_id"] == ann["attributes"]["track_id"] == 3 and ann["segmentation"]["size"] == [H, W]
    assert [i["frame_id"] for i in data["images"][:4]] == [0, 1, 3, 4]  # the empty frame is an image too
    back = read_coco(path)
    assert [s.name for s in back] == ["a", "b"]
    for b, r in zip(back, ref, strict=True):
        assert (b.width, b.height) == (W, H)
        assert_same(b, r)


def test_coco_without_video_fields_maps_files_to_the_source_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # a logging.config.dictConfig elsewhere in the session (import-linter's) disables the loggers that exist by then
    monkeypatch.setattr(logging.getLogger("samqa_framework.data.formats.coco"), "disabled", False)
    poly = [10, 10, 30, 10, 30, 25, 10, 25]
    data = {"images": [{"id": 5, "file_name": "x/frame_10.png", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "fly"}],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "bbox": [10, 10, 20, 15], "area": 300,
                             "iscrowd": 0, "segmentation": [poly]},
                            {"id": 2, "image_id": 5, "category_id": 1, "bbox": [40, 10, 5, 5], "area": 25,
                             "iscrowd": 0, "segmentation": []}]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"image 5 \(x/frame_10\.png\): no frame_id"):
        read_coco(tmp_path / "c.json")
    files = FrameFiles(f"frame_{i}.png" for i in range(12))
    with caplog.at_level("WARNING"):
        (seq,) = read_coco(tmp_path / "c.json", frame_files=files)
    assert "2 annotation(s) without track_id" in caplog.text
    (anns,) = seq.frames.values()
    assert list(seq.frames) == [11] and [a.track_id for a in anns] == [1, 2]
    assert rle.area(anns[0].rle) == 20 * 15 and anns[1].rle is None  # a polygon rasterised by pycocotools
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="not a COCO instance file"):
        read_coco(tmp_path / "bad.json")


# -- Label Studio -----------------------------------------------------------------------------------------


def test_labelstudio_round_trip_and_a_reviewers_correction(tmp_path: Path) -> None:
    ref = labels()
    path = write_labelstudio(tmp_path / "tasks.json", [ref], lambda s, f: f"/data/local-files/?d=images/{f}.jpg")
    tasks = json.loads(path.read_text())
    assert len(tasks) == 4 and tasks[0]["data"] == {"image": "/data/local-files/?d=images/1.jpg",
                                                     "sequence": "clip-train", "frame_id": 0}
    regions = tasks[0]["predictions"][0]["result"]
    assert {r["type"] for r in regions} == {"rectanglelabels", "polygonlabels"}
    assert regions[0]["value"]["rectanglelabels"] == ["animal 3"]
    config = label_config(["animal 3", "animal 7"])
    assert '<Label value="animal 7"/>' in config and 'name="outline"' in config
    (back,) = read_labelstudio(path)
    assert_same(back, ref, exact_masks=True, scores=False)
    # a reviewer swaps the identities of frame 2 and accepts: the annotation wins over the prediction
    result = json.loads(json.dumps(tasks[1]["predictions"][0]["result"]))
    for r in result:
        key = "rectanglelabels" if r["type"] == "rectanglelabels" else "polygonlabels"
        r["value"][key] = ["animal 7" if r["value"][key] == ["animal 3"] else "animal 3"]
    tasks[1]["annotations"] = [{"result": result, "was_cancelled": False}]
    path.write_text(json.dumps(tasks))
    (back,) = read_labelstudio(path)
    boxes = {a.track_id: a.box for a in back.frames[2]}
    want = {a.track_id: a.box for a in ref.frames[2]}
    np.testing.assert_allclose(boxes[3], want[7]) and np.testing.assert_allclose(boxes[7], want[3])


# -- DeepLabCut -------------------------------------------------------------------------------------------


def _dlc_frame(index: pd.Index | pd.MultiIndex) -> pd.DataFrame:
    """A maDLC CollectedData table as DeepLabCut builds it: scorer / individuals / bodyparts / coords columns."""
    columns = pd.MultiIndex.from_product([["me"], ["mouse1", "mouse2"], ["snout", "tail"], ["x", "y"]],
                                         names=["scorer", "individuals", "bodyparts", "coords"])
    values = np.array([[10, 10, 30, 20, 50, 40, 70, 45],
                       [12, 11, 32, 21, np.nan, np.nan, np.nan, np.nan]], dtype=float)  # mouse2 out of view
    return pd.DataFrame(values, index=index, columns=columns)


@pytest.mark.parametrize("layout", ["csv_multiindex", "csv_path", "h5"])
def test_dlc_multi_animal_labels_in_their_official_layouts(tmp_path: Path, layout: str) -> None:
    if layout == "csv_path":  # DeepLabCut < 2.3: the image path in one index column
        index = pd.Index(["labeled-data/clip/img0004.png", "labeled-data/clip/img0017.png"])
    else:  # DeepLabCut >= 2.3: (labeled-data, video, image)
        index = pd.MultiIndex.from_tuples([("labeled-data", "clip", "img0004.png"),
                                           ("labeled-data", "clip", "img0017.png")])
    df = _dlc_frame(index)
    path = tmp_path / ("CollectedData_me.h5" if layout == "h5" else "CollectedData_me.csv")
    if layout == "h5":
        df.to_hdf(path, key="df_with_missing", mode="w")
    else:
        df.to_csv(path)
    (seq,) = read_dlc(path, margin_frac=0.0, margin_px=2.0)
    assert seq.name == "clip" and list(seq.frames) == [5, 18]  # img0004 = the video's frame index 4
    first = {a.track_id: a.box for a in seq.frames[5]}
    np.testing.assert_allclose(first[1], [8, 8, 24, 14])  # keypoints' box (10..30, 10..20) + 2 px
    np.testing.assert_allclose(first[2], [48, 38, 24, 9])
    assert [a.track_id for a in seq.frames[18]] == [1]


def test_dlc_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError) as err:
        read_dlc(tmp_path / "x.csv")
    assert err.value.path == str(tmp_path / "x.csv")
