"""YOLO export: label round trip, background frames, data.yaml, and ultralytics' own checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from samqa_framework.data.mot import MotTable
from samqa_framework.data.video import ImageFolderReader
from samqa_framework.data.yolo_export import (
    DataYaml,
    check_label_set,
    export_yolo,
    read_data_yaml,
    write_data_yaml,
)
from samqa_framework.utils.errors import DataFormatError

W, H, N = 80, 60, 6
# frame -> [(id, left, top, width, height, flag)]
BOXES = {
    1: [(1, 10, 5, 20, 15, 1), (2, 40.5, 30.25, 12, 18, 1)],
    # frame 2: nothing -> background image
    3: [(1, -6, 50, 20, 20, 1)],  # sticks out left and bottom: clipped to (0, 50, 14, 10)
    4: [(1, 30, 20, 10, 10, 0)],  # flag 0 (ignore): left out -> empty label
    5: [(2, 70, 0, 10, 60, 1)],
    6: [(1, 0, 0, 80, 60, 1), (2, 5, 5, 5, 5, 0.3)],
}
EXPECTED = {  # clipped pixel boxes that must come back, as (left, top, right, bottom)
    1: [(10, 5, 30, 20), (40.5, 30.25, 52.5, 48.25)], 2: [], 3: [(0, 50, 14, 60)], 4: [],
    5: [(70, 0, 80, 60)], 6: [(0, 0, 80, 60)],
}


def _table() -> MotTable:
    rows = [(f, *r) for f, rs in BOXES.items() for r in rs]
    a = np.array(rows, float)
    return MotTable(a[:, 0], a[:, 1], a[:, 2:6], conf=a[:, 6])


@pytest.fixture
def frames(tmp_path: Path) -> ImageFolderReader:
    folder = tmp_path / "seq" / "img1"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(N):  # smooth images, so JPEG stays close to the original
        img = np.stack([xx * 3, yy * 4, np.full_like(xx, 40 * i)], axis=-1).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), img)
    return ImageFolderReader(folder)


def _read_labels(path: Path) -> list[tuple[int, float, float, float, float]]:
    out = []
    for line in path.read_text().splitlines():
        c, cx, cy, w, h = line.split()
        out.append((int(c), float(cx), float(cy), float(w), float(h)))
    return out


def test_labels_round_trip(tmp_path: Path, frames: ImageFolderReader) -> None:
    out = tmp_path / "yolo"
    images = export_yolo([("fly", frames, _table())], out, split="train")
    assert images == out / "images" / "train"
    names = sorted(p.name for p in images.iterdir())
    assert names == [f"fly_{f:06d}.jpg" for f in range(1, N + 1)]
    labels = sorted(p.name for p in (out / "labels" / "train").iterdir())
    assert labels == [f"fly_{f:06d}.txt" for f in range(1, N + 1)]
    for f, want in EXPECTED.items():
        got = _read_labels(out / "labels" / "train" / f"fly_{f:06d}.txt")
        assert len(got) == len(want), f"frame {f}: {got}"
        for (c, cx, cy, w, h), (x0, y0, x1, y1) in zip(got, want, strict=True):
            assert c == 0
            assert all(0 <= v <= 1 for v in (cx, cy, w, h))
            np.testing.assert_allclose([cx, cy, w, h], [(x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W,
                                                        (y1 - y0) / H], atol=1e-3)
        if not want:
            assert (out / "labels" / "train" / f"fly_{f:06d}.txt").stat().st_size == 0
    img = cv2.imread(str(images / "fly_000004.jpg"))
    assert img.shape == (H, W, 3) and np.abs(img.astype(int) - frames.read(3).astype(int)).mean() < 3
    assert not [p for p in (out / "images").iterdir() if p.name.startswith(".")], "temporary folder left"


def test_every_and_classes(tmp_path: Path, frames: ImageFolderReader) -> None:
    t = _table()
    t.cls[:] = [1, 2, 1, 1, 2, 1, 1]
    export_yolo([("a", frames, t)], tmp_path, split="val", every=2, class_names=("female", "male"),
                image_ext=".png")
    assert sorted(p.name for p in (tmp_path / "images" / "val").iterdir()) == ["a_000001.png", "a_000003.png",
                                                                               "a_000005.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "images" / "val" / "a_000005.png")), frames.read(4))
    assert [r[0] for r in _read_labels(tmp_path / "labels" / "val" / "a_000001.txt")] == [0, 1]
    assert [r[0] for r in _read_labels(tmp_path / "labels" / "val" / "a_000005.txt")] == [1]
    t.cls[0] = 3
    with pytest.raises(ValueError, match="MOT class 3"):
        export_yolo([("a", frames, t)], tmp_path / "x", class_names=("female", "male"))


def test_only_the_given_frames_are_exported(tmp_path: Path, frames: ImageFolderReader) -> None:
    """A method's skipped frames are not negatives: they must not become empty (background) label files."""
    export_yolo([("a", frames, _table())], tmp_path, split="train", frames={"a": [1, 4]})
    assert sorted(p.name for p in (tmp_path / "labels" / "train").iterdir()) == ["a_000001.txt", "a_000004.txt"]
    assert sorted(p.name for p in (tmp_path / "images" / "train").iterdir()) == ["a_000001.jpg", "a_000004.jpg"]
    assert len(_read_labels(tmp_path / "labels" / "train" / "a_000001.txt")) == len(EXPECTED[1]) == 2
    assert (tmp_path / "labels" / "train" / "a_000004.txt").stat().st_size == 0  # labelled, and empty


def test_reexport_replaces_and_failure_keeps_old(tmp_path: Path, frames: ImageFolderReader) -> None:
    export_yolo([("a", frames, _table()), ("b", frames, MotTable.empty())], tmp_path)
    assert len(list((tmp_path / "images" / "train").iterdir())) == 2 * N
    assert all(p.stat().st_size == 0 for p in (tmp_path / "labels" / "train").glob("b_*.txt"))

    class Broken:  # a frame source whose decoding fails half way
        path, num_frames, width, height, fps = Path("broken.mp4"), N, W, H, 25.0

        def __len__(self) -> int:
            return N

        def iter_range(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
            yield frames.read(0)
            raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        export_yolo([("c", Broken(), MotTable.empty())], tmp_path)
    assert len(list((tmp_path / "images" / "train").iterdir())) == 2 * N, "old split must survive"
    leftovers = [p for d in ("images", "labels") for p in (tmp_path / d).iterdir() if p.name.startswith(".")]
    assert not leftovers

    export_yolo([("a", frames, _table())], tmp_path, every=3)
    assert sorted(p.name for p in (tmp_path / "labels" / "train").iterdir()) == ["a_000001.txt", "a_000004.txt"]
    with pytest.raises(ValueError, match="twice"):
        export_yolo([("a", frames, _table()), ("a", frames, _table())], tmp_path / "dup")


def test_data_yaml_accepted_by_ultralytics(tmp_path: Path, frames: ImageFolderReader,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    out = tmp_path / "yolo"
    export_yolo([("fly", frames, _table())], out, split="train")
    export_yolo([("fly", frames, _table())], out, split="val", every=2)
    with pytest.raises(ValueError, match="val"):
        write_data_yaml(out, {"train": "train"}, ["animal"])
    data_yaml = write_data_yaml(out, {"train": "train", "val": "val"}, ["animal"])
    data = yaml.safe_load(data_yaml.read_text())
    assert data == {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "names": {0: "animal"}}

    import ultralytics.data.utils as yolo_utils

    fonts: list[str] = []  # check_det_dataset ends by fetching a font for plots: keep the test offline
    monkeypatch.setattr(yolo_utils, "check_font", lambda name="": fonts.append(name))
    checked = yolo_utils.check_det_dataset(str(data_yaml))
    assert checked["nc"] == 1 and checked["names"] == {0: "animal"} and fonts == ["Arial.ttf"]
    assert Path(checked["train"]) == (out / "images" / "train").resolve()
    assert Path(checked["val"]) == (out / "images" / "val").resolve()

    # and every image/label pair passes ultralytics' own per-file verification
    images = sorted(str(p) for p in (out / "images" / "train").iterdir())
    for im_file, lb_file in zip(images, yolo_utils.img2label_paths(images), strict=True):
        _, lb, shape, *_, nm, nf, ne, nc, msg = yolo_utils.verify_image_label(
            (im_file, lb_file, "", False, 1, 0, 0, False))
        assert (nm, nf, nc) == (0, 1, 0), msg
        assert tuple(shape) == (H, W)
        frame = int(Path(im_file).stem.split("_")[-1])
        assert len(lb) == len(EXPECTED[frame]) and ne == (not EXPECTED[frame])


def test_data_yaml_round_trip(tmp_path: Path, frames: ImageFolderReader) -> None:
    out = tmp_path / "yolo"
    for split in ("train", "val", "test"):
        export_yolo([("fly", frames, _table())], out, split=split, class_names=("female", "male"), every=3)
    path = write_data_yaml(out, {"train": "train", "val": "val", "test": "test"}, ["female", "male"])
    assert read_data_yaml(path) == DataYaml(out.absolute(), {"train": "train", "val": "val", "test": "test"},
                                            ["female", "male"])
    path.write_text("path: .\ntrain: images/train\nval: images/val\nnames: [animal]\n")  # relative root, list
    assert read_data_yaml(path) == DataYaml(out / ".", {"train": "train", "val": "val"}, ["animal"])


@pytest.mark.parametrize("text, message, line", [
    ("train: images/train\nval: [images/val\nnames: {0: a}\n", "not YAML", 3),
    ("- train\n- val\n", "expected a mapping", None),
    ("train: images/train\nnames: {0: a}\n", "missing val", None),
    ("train: labels/train\nval: images/val\nnames: {0: a}\n", r"train: 'labels/train' is not an images/<split>", None),
    ("train: images/train\nval: images/val\nnames: {}\n", "names is empty", None),
    ("train: images/train\nval: images/val\nnames: {1: a}\n", r"class ids must be 0\.\.0", None),
])
def test_bad_data_yaml_names_the_file(tmp_path: Path, text: str, message: str, line: int | None) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as err:
        read_data_yaml(path)
    assert err.value.path == str(path) and err.value.line == line
    with pytest.raises(DataFormatError, match="not found"):
        read_data_yaml(tmp_path / "none.yaml")


def test_check_label_set_counts_boxes_and_names_file_and_line(tmp_path: Path, frames: ImageFolderReader) -> None:
    export_yolo([("fly", frames, _table())], tmp_path, split="train", class_names=("female", "male"))
    export_yolo([("fly", frames, MotTable.empty())], tmp_path, split="val")
    assert check_label_set(tmp_path, "train", ["female", "male"]) == sum(len(v) for v in EXPECTED.values())
    assert check_label_set(tmp_path, "val", ["animal"], require_boxes=False) == 0
    with pytest.raises(DataFormatError, match="empty label set: none of the 6 label files") as err:
        check_label_set(tmp_path, "val", ["animal"])
    assert err.value.path == str(tmp_path / "labels" / "val")
    with pytest.raises(DataFormatError, match="not found"):
        check_label_set(tmp_path, "test", ["animal"])
    label = tmp_path / "labels" / "train" / "fly_000001.txt"
    good = label.read_text().splitlines()[0]
    for bad, message in (("0 0.5 1.5 0.1 0.1", "not normalised"), ("0 0.5 0.5", "class cx cy w h"),
                         ("2 0.5 0.5 0.1 0.1", r"class id 2 is not one of the data set's 2 class\(es\) 0\.\.1"),
                         ("0.5 0.5 0.5 0.1 0.1", "class id 0.5"), ("0 a b c d", "not numbers")):
        label.write_text(f"{good}\n\n{bad}\n")
        with pytest.raises(DataFormatError, match=message) as err:
            check_label_set(tmp_path, "train", ["female", "male"])
        assert err.value.path == str(label) and err.value.line == 3
