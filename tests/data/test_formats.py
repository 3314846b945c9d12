"""File formats: MOT text, COCO RLE masks, videos, sequence folders, manifests, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samqa_framework.data import rle
from samqa_framework.data.mot import MotTable, read_mot, write_mot
from samqa_framework.data.sequence import (
    DatasetManifest,
    SeqInfo,
    Sequence,
    read_build_hash,
    write_build_record,
)
from samqa_framework.data.video import ImageFolderReader, VideoReader, VideoWriter
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_dir, atomic_open, atomic_write_json, atomic_write_text

# -- MOT ---------------------------------------------------------------------------------------------------


def _table() -> MotTable:
    return MotTable(frame=[2, 1, 1, 3], track_id=[1, 2, 1, 7],
                    box=[[1.5, 2.25, 10, 20], [0, 0, 3.75, 4], [100.01, 50.5, 7, 8.5], [5, 5, 5, 5]],
                    conf=[1, 0, 1, 1], cls=[1, 1, 2, 1], visibility=[0.5, 1, 0.125, 1])


def test_mot_round_trip(tmp_path: Path) -> None:
    t = _table()
    assert t.frame.tolist() == [1, 1, 2, 3] and t.track_id.tolist() == [1, 2, 1, 7]  # sorted by (frame, id)
    write_mot(tmp_path / "gt.txt", t)
    back = read_mot(tmp_path / "gt.txt", num_frames=3, image_size=(200, 100))
    for name in ("frame", "track_id", "cls"):
        assert np.array_equal(getattr(back, name), getattr(t, name)), name
    for name in ("box", "conf", "visibility"):
        np.testing.assert_allclose(getattr(back, name), getattr(t, name), atol=1e-9, err_msg=name)
    # 10-column tracker results keep the scores
    t.conf[:] = [0.9123, 0.5, 0.25, 1.0]
    write_mot(tmp_path / "res.txt", t, columns=10)
    res = read_mot(tmp_path / "res.txt")
    np.testing.assert_allclose(res.conf, t.conf, atol=1e-9)
    assert np.all(res.cls == 1) and len(res.rows_of(1)) == 2 and res.num_frames == 3
    assert [f for f, _ in res.frame_slices()] == [1, 2, 3]


GOOD = "1,1,10,10,5,5,1,1,1\n"


@pytest.mark.parametrize(("lines", "line", "fragment"), [
    (GOOD + "2,1,10,10,5\n", 2, "expected 6 to 10 columns, found 5"),
    (GOOD + "2,1,10,10,5,5,1,1\n", 2, "like the first row"),
    (GOOD + GOOD.replace("1,1,10", "2,1,10") + "3,1,nan,10,5,5,1,1,1\n", 3, "NaN"),
    (GOOD + "2,1,10,10,5,5,1,1,nan\n", 2, "NaN"),  # visibility column counts too
    (GOOD + "2,1,10,10,-5,5,1,1,1\n", 2, "width and height must be positive"),
    (GOOD + "\n# comment\n7,1,10,10,5,5,1,1,1\n", 4, "frame 7 is beyond the sequence's 5 frames"),
    (GOOD + "2,2,10,10,5,5,1,1,1\n1,1,11,11,5,5,1,1,1\n", 3, "frame 1 has id 1 twice"),
    (GOOD + "2,1,10,,5,5,1,1,1\n", 2, "not a number"),
    (GOOD + "0,1,10,10,5,5,1,1,1\n", 2, "frame must be an integer >= 1"),
    (GOOD + "2,1,300,10,5,5,1,1,1\n", 2, "outside the 200x100 image"),
    (GOOD + GOOD + "2,1,10,10,5,5,1,1,\xff1\n", 3, "not UTF-8 text"),  # written as latin-1: one bad byte
])
def test_mot_errors_name_file_and_line(tmp_path: Path, lines: str, line: int, fragment: str) -> None:
    path = tmp_path / "gt.txt"
    path.write_bytes(lines.encode("latin-1"))
    with pytest.raises(DataFormatError) as err:
        read_mot(path, num_frames=5, image_size=(200, 100))
    assert err.value.path == str(path) and err.value.line == line
    assert str(err.value).startswith(f"{path}:{line}: ") and fragment in str(err.value)


def test_mot_accepts_whitespace_and_trailing_comma(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1 3 10 10 5 5 1 1 1\n2,3,10,10,5,5,1,1,1,\n")
    t = read_mot(tmp_path / "a.txt")
    assert t.frame.tolist() == [1, 2] and t.track_id.tolist() == [3, 3]
    with pytest.raises(DataFormatError, match="file not found"):
        read_mot(tmp_path / "missing.txt")


# -- RLE ---------------------------------------------------------------------------------------------------


def test_rle_round_trip_and_bbox(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((37, 53), bool)
    mask[5:20, 11:40] = rng.random((15, 29)) > 0.3
    mask[5, 11] = mask[19, 39] = True  # pin the tight box corners
    enc = rle.encode(mask)
    assert enc["size"] == [37, 53] and isinstance(enc["counts"], str)
    assert np.array_equal(rle.decode(enc), mask)
    ys, xs = np.nonzero(mask)
    tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert rle.bbox(enc).tolist() == tight == [11, 5, 29, 15]
    assert rle.area(enc) == mask.sum()
    # uncompressed (list) counts, as some tools write them: column-major runs starting with zeros
    small = np.zeros((2, 3), bool)
    small[1, 0] = small[0, 2] = True
    assert np.array_equal(rle.decode({"size": [2, 3], "counts": [1, 1, 2, 1, 1]}), small)

    with rle.MaskWriter(tmp_path / "gt" / "masks.jsonl") as w:
        w.write(1, [(3, enc)])
        w.write(4, [])
    got = list(rle.iter_masks(tmp_path / "gt" / "masks.jsonl"))
    assert [f for f, _ in got] == [1, 4] and np.array_equal(rle.decode(got[0][1][3]), mask)
    (tmp_path / "bad.jsonl").write_text('{"frame": 1, "instances": []}\n{"frame": 2}\n')
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:2"):
        list(rle.iter_masks(tmp_path / "bad.jsonl"))


def test_rle_iou_without_decoding_and_shape_check() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((37, 53)) > 0.5, rng.random((37, 53)) > 0.3
    want = (a & b).sum() / (a | b).sum()
    enc = rle.encode(a)
    assert rle.iou(enc, rle.encode(b)) == pytest.approx(want, abs=1e-12)
    assert rle.iou(rle.encode(a), rle.encode(a)) == 1.0
    empty = rle.encode(np.zeros((37, 53), bool))
    assert rle.iou(empty, empty) == 0.0 and rle.iou(empty, rle.encode(a)) == 0.0
    listed = {"size": [2, 3], "counts": [1, 1, 2, 1, 1]}, {"size": [2, 3], "counts": [0, 2, 4]}  # pixels {1, 4}, {0, 1}
    assert rle.iou(*listed) == pytest.approx(1 / 3)
    for shape in ((1, 1), (7, 1), (480, 640), (1500, 2000)):  # long and negative runs in the compressed counts
        for p in (0.001, 0.3, 0.99, 1.0):
            m = rng.random(shape) < p
            assert rle.iou(rle.encode(m), rle.encode(m)) == (1.0 if m.any() else 0.0)
    # runs that do not cover the image: pycocotools' iou would never return
    for bad in ({"size": [2, 3], "counts": [1, 1]}, {**enc, "counts": enc["counts"][:-3]}, {**enc, "size": [53, 37]}):
        with pytest.raises(ValueError, match=r"runs of|middle of a run"):
            rle.iou(enc, bad)
    assert rle.check(enc) is enc and rle.check({"size": [2, 3], "counts": [1, 5]})
    for bad in ({"size": [37], "counts": "x"}, {"size": [37, -1], "counts": "x"}, {"size": [2, 3]},
                {"size": "2x3", "counts": "x"}, ["size", "counts"], None):
        with pytest.raises(ValueError, match="not a COCO RLE"):
            rle.check(bad)


# -- video -------------------------------------------------------------------------------------------------


def _frame(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 2, yy * 3, np.full_like(xx, (9 * i) % 256)], axis=-1).astype(np.uint8)


def _write(path: Path, n: int) -> None:
    with VideoWriter(path, 25, (96, 64)) as w:
        for i in range(n):
            w.write(_frame(i))


def test_video_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    _write(path, 20)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # the temporary file was renamed
    r = VideoReader(path)
    assert (len(r), r.width, r.height, r.fps) == (20, 96, 64, 25.0)
    frames = list(r)
    assert len(frames) == 20
    for i, f in enumerate(frames):
        diff = np.abs(f.astype(int) - _frame(i).astype(int)).mean()
        assert diff < 4, f"frame {i} differs by {diff:.2f}"
    sub = VideoReader(path, start=5, length=10)
    assert len(sub) == 10 and np.array_equal(sub.read(0), frames[5]) and np.array_equal(sub.read(9), frames[14])
    assert len(list(sub.iter_range(0, None, 3))) == 4
    with pytest.raises(IndexError):
        sub.read(10)
    with pytest.raises(DataFormatError, match="start frame 20"):
        VideoReader(path, start=20)


def test_video_writer_aborts_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 96x64"), VideoWriter(tmp_path / "v.mp4", 25, (96, 64)) as w:
        w.write(_frame(0))
        w.write(_frame(1, w=50))
    assert list(tmp_path.iterdir()) == []


def test_truncated_video_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.mp4"
    _write(path, 40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError) as err:
        list(VideoReader(path))  # fails on open or, at the latest, while decoding
    assert err.value.path == str(path) and "cut.mp4" in str(err.value)
    path.write_bytes(b"not a video at all")
    with pytest.raises(DataFormatError, match=r"cut\.mp4"):
        VideoReader(path)


# -- sequences and manifests -----------------------------------------------------------------------------------


def test_sequence_folder(tmp_path: Path) -> None:
    import cv2

    seq = tmp_path / "s1"
    (seq / "img1").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(seq / "img1" / f"{i + 1:06d}.png"), _frame(i))
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text("1,1,1,1,5,5,1,1,1\n4,1,1,1,5,5,1,1,1\n")
    s = Sequence(seq)  # no seqinfo.ini: derived from the frames
    assert (s.name, s.info.seq_length, s.info.width, s.info.height, s.info.video) == ("s1", 4, 96, 64, None)
    assert isinstance(s.frames(), ImageFolderReader) and np.array_equal(s.frames().read(3), _frame(3))
    assert len(s.gt()) == 2 and not s.has_masks()

    SeqInfo(name="s1", frame_rate=30, seq_length=3, width=96, height=64, im_ext=".png").write(seq / "seqinfo.ini")
    with pytest.raises(DataFormatError) as err:  # frame 4 of gt is beyond seqLength=3
        Sequence(seq).gt()
    assert err.value.path == str(seq / "gt" / "gt.txt") and err.value.line == 2

    SeqInfo(name="s1", frame_rate=30, seq_length=9, width=96, height=64).write(seq / "seqinfo.ini")
    with pytest.raises(DataFormatError, match="seqLength=9"):
        Sequence(seq).frames()
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=s1\n")
    with pytest.raises(DataFormatError, match=r"seqinfo\.ini"):
        Sequence(seq)


def test_seqinfo_round_trip_with_odd_video_path(tmp_path: Path) -> None:
    info = SeqInfo(name="x", frame_rate=12.5, seq_length=40, width=640, height=480,
                   video="/data/100% real/clip.mp4", video_start=7)
    info.write(tmp_path / "seqinfo.ini")
    assert SeqInfo.read(tmp_path / "seqinfo.ini") == info


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = DatasetManifest("d", "mouse", 3, ["a-train"], ["a-eval", "b"])
    assert m.write(tmp_path) == tmp_path / "dataset.yaml"
    assert DatasetManifest.read(tmp_path) == m
    (tmp_path / "dataset.yaml").write_text("- just\n- a list\n")
    with pytest.raises(DataFormatError, match="bad manifest"):
        DatasetManifest.read(tmp_path)
    with pytest.raises(DataFormatError, match="not found"):
        DatasetManifest.read(tmp_path / "nowhere")


def test_a_sequence_name_that_is_a_path_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    ini = tmp_path / "s1" / "seqinfo.ini"
    ini.parent.mkdir()
    ini.write_text("[Sequence]\nname=../../x\nframeRate=30\nseqLength=4\nimWidth=96\nimHeight=64\n")
    with pytest.raises(DataFormatError, match=r"sequence name '\.\./\.\./x' must not hold '/'") as err:
        Sequence(ini.parent)  # its labels would be written to <out_dir>/../../x
    assert (err.value.path, err.value.line) == (str(ini), 2)
    bare = tmp_path / "bare" / ".."  # a folder without seqinfo.ini is named after itself
    bare.parent.mkdir()
    with pytest.raises(DataFormatError, match=r"sequence folder name '\.\.'"):
        Sequence(bare)


def test_manifest_sequence_names_that_are_paths_are_refused(tmp_path: Path) -> None:
    DatasetManifest("d", "mouse", 3, ["a-train"], ["a-eval", "../../b"]).write(tmp_path)
    with pytest.raises(DataFormatError, match=r"eval: sequence name '\.\./\.\./b' must not hold '/'") as err:
        DatasetManifest.read(tmp_path)
    assert err.value.path == str(tmp_path / "dataset.yaml") and err.value.line == 8
    (tmp_path / "dataset.yaml").write_text("name: d\nspecies: m\nnum_animals: 1\ntrain: x\n")
    with pytest.raises(DataFormatError, match="train: expected a list"):
        DatasetManifest.read(tmp_path)


# -- atomic writes ---------------------------------------------------------------------------------------------


def test_build_record_round_trip(tmp_path: Path) -> None:
    write_build_record(tmp_path, {"config_hash": "0123abcd", "frames": 40})
    assert read_build_hash(tmp_path) == "0123abcd"
    for text in ("{not json", '{"frames": 40}', "[1, 2]"):  # unreadable: the sequence counts as not built
        (tmp_path / "build.json").write_text(text)
        assert read_build_hash(tmp_path) is None
    assert read_build_hash(tmp_path / "none") is None


def test_atomic_writers_leave_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "new.txt") as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    atomic_write_text(tmp_path / "old.txt", "old")
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "old.txt") as fh:
        fh.write("new")
        raise RuntimeError("boom")
    assert (tmp_path / "old.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["old.txt"]

    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "j.json", {"x": object()})
    assert not (tmp_path / "j.json").exists()

    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]

    with atomic_dir(tmp_path / "d") as d:
        (d / "first").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as d:
        (d / "second").write_text("2")
        raise RuntimeError("boom")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["first"]
    with atomic_dir(tmp_path / "d") as d:
        (d / "second").write_text("2")
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["second"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "old.txt"]


def test_atomic_writes_follow_umask(tmp_path: Path) -> None:
    """mkstemp/mkdtemp make private 0600/0700 entries; atomic writes must look like ordinary ones."""
    from samqa_framework.utils import io as io_mod  # the umask is read once, at import

    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_dir(tmp_path / "d"):
        pass
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~io_mod._UMASK
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~io_mod._UMASK
