"""samqa-export: a labelling run in COCO, YOLO segmentation, Label Studio and MOT; each format that can be read
back gives the same boxes, masks and identities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from samqa_framework import api
from samqa_framework.annotate.export import load
from samqa_framework.data import rle
from samqa_framework.data.formats.labels import SequenceLabels
from samqa_framework.data.formats.motchallenge import read_motchallenge
from samqa_framework.data.importers import MotChallengeImporter
from samqa_framework.data.label_import import LabelImporter
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.data.yolo_export import check_label_set, read_data_yaml
from samqa_framework.utils.errors import ConfigError, DataFormatError

SEQ = "synthetic_rats-train"


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMQA_ROOT", str(tmp_path))  # the apps' run folders land here, not in the checkout


@pytest.fixture(scope="module")
def run_labels(tiny_rats: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A samqa-annotate run's labels folder: manual labels (with masks) of every 2nd frame of the tiny rats."""
    out = tmp_path_factory.mktemp("annotate")
    cfg = api.compose("annotate", ["data.size=tiny", f"paths.data_dir={tiny_rats.parent}", "annotator=manual",
                                   "annotator.every=2", f"out_dir={out / 'labels'}", "logger=csv", "progress=false",
                                   "model.image_size=64"], output_dir=out / "run")
    api.annotate(cfg)
    return out / "labels"


def _export(tmp_path: Path, labels: Path, fmt: str, *extra: str) -> Path:
    return api.export([f"labels={labels}", f"format={fmt}", f"out_dir={tmp_path / fmt}", *extra])


def _same(back: SequenceLabels, ref: SequenceLabels) -> None:
    """Frames with animals, their identities, boxes (MOT files keep 2 decimals) and masks (pixel for pixel)."""
    want = {f: a for f, a in ref.frames.items() if a}
    assert list(back.frames) == list(want)
    for frame, anns in want.items():
        got = {a.track_id: a for a in back.frames[frame]}
        assert set(got) == {a.track_id for a in anns}, frame
        for a in anns:
            np.testing.assert_allclose(got[a.track_id].box, a.box, atol=0.006, err_msg=f"frame {frame}")
            assert np.array_equal(rle.decode(got[a.track_id].rle), rle.decode(a.rle)), f"frame {frame}"


@pytest.mark.parametrize("fmt,labels_file", [("coco", "annotations.json"), ("labelstudio", "tasks.json")])
def test_coco_and_labelstudio_round_trip_through_an_import_of_the_video(tmp_path: Path, run_labels: Path,
                                                                        tiny_rats: Path, fmt: str,
                                                                        labels_file: str) -> None:
    ref = load(run_labels / SEQ).labels
    out = _export(tmp_path, run_labels, fmt)
    assert sorted(p.name for p in (out / "images" / SEQ).iterdir()) == [f"{f:06d}.jpg" for f in ref.frames]
    if fmt == "labelstudio":
        assert '<Label value="rat 1"/>' in (out / "label_config.xml").read_text()  # the data set's species
    manifest = LabelImporter(str(tiny_rats / SEQ / "video.mp4"), str(out / labels_file), fmt).build(tmp_path / "in")
    assert manifest.num_animals == 2 and manifest.train == ["video-train"]
    _same(read_motchallenge(tmp_path / "in" / "video-train"), ref)


def test_mot_round_trip_through_the_motchallenge_import(tmp_path: Path, run_labels: Path) -> None:
    ref = load(run_labels / SEQ).labels
    out = _export(tmp_path, run_labels, "mot")
    MotChallengeImporter(str(out), train=[SEQ]).build(tmp_path / "in")
    _same(read_motchallenge(tmp_path / "in" / SEQ), ref)
    assert DatasetManifest.read(tmp_path / "in").train == [SEQ]


def test_yolo_segmentation_outlines_are_the_masks(tmp_path: Path, run_labels: Path) -> None:
    ref = load(run_labels / SEQ).labels
    out = _export(tmp_path, run_labels, "yolo_seg")
    data = read_data_yaml(out / "data.yaml")
    assert data.names == ["rat"] and check_label_set(out, "train", data.names) == len(ref.table())
    for frame, anns in ref.frames.items():
        lines = (out / "labels" / "train" / f"{SEQ}_{frame:06d}.txt").read_text().splitlines()
        assert len(lines) == len(anns)
        for line, a in zip(lines, sorted(anns, key=lambda a: a.track_id), strict=True):
            cls, *xy = line.split()
            polygon = np.asarray(xy, dtype=float).reshape(-1, 2) * [160, 120]
            assert cls == "0" and rle.iou(rle.from_polygons([polygon], 120, 160), a.rle) > 0.9
    boxes = _export(tmp_path, run_labels, "yolo")
    assert all(len(line.split()) == 5 for p in (boxes / "labels" / "train").glob("*.txt")
               for line in p.read_text().splitlines())


def test_an_export_never_replaces_a_folder(tmp_path: Path, run_labels: Path) -> None:
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "mine.txt").write_text("keep")
    with pytest.raises(DataFormatError, match="not empty") as err:
        _export(tmp_path, run_labels, "coco")
    assert err.value.path == str(tmp_path / "coco") and (tmp_path / "coco" / "mine.txt").read_text() == "keep"
    (tmp_path / "empty").mkdir()
    api.export([f"labels={run_labels}", "format=mot", f"out_dir={tmp_path / 'empty'}"])  # empty: fine
    assert (tmp_path / "empty" / SEQ / "gt" / "gt.txt").is_file()
    with pytest.raises(ConfigError, match="'format'"):
        _export(tmp_path, run_labels, "csv")
    with pytest.raises(ConfigError, match=r"'labels'.*no label set"):
        _export(tmp_path, tmp_path / "empty", "coco")


def test_samqa_export_app(tmp_path: Path, run_labels: Path) -> None:
    def app(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "samqa_framework.cli.export", *args], cwd=tmp_path,
                              env={**__import__("os").environ, "SAMQA_ROOT": str(tmp_path)}, capture_output=True,
                              text=True, timeout=300, check=False)

    ok = app(f"labels={run_labels}", "format=coco", f"out_dir={tmp_path / 'c'}", "images=false")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "c" / "annotations.json").is_file() and not (tmp_path / "c" / "images").exists()
    refused = app(f"labels={run_labels}", "format=coco", f"out_dir={tmp_path / 'c'}")
    assert refused.returncode == 1 and "not empty" in refused.stderr and "Traceback" not in refused.stderr
