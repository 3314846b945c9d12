"""Importers: the real SLEAP fly clip, a small synthetic SLEAP project, and MOTChallenge folders."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from samqa_framework.data.importers import MotChallengeImporter, SleapImporter
from samqa_framework.data.mot import MotTable, read_mot, write_mot
from samqa_framework.data.sequence import DatasetManifest, SeqInfo, Sequence
from samqa_framework.data.video import VideoWriter
from samqa_framework.utils.errors import ConfigError, DataFormatError

SLEAP_DIR = Path("/work/shared/data/sleap_clip")
needs_clip = pytest.mark.skipif(not (SLEAP_DIR / "clip.slp").is_file() or not (SLEAP_DIR / "clip.mp4").is_file(),
                                reason=f"real SLEAP fly clip not present at {SLEAP_DIR}")
SPLITS = {"train": [0, 750], "eval": [750, 1500]}


# -- real SLEAP clip ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fly_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DatasetManifest]:
    out = tmp_path_factory.mktemp("flies")
    manifest = SleapImporter(str(SLEAP_DIR / "clip.slp"), name="flies", species="fly", splits=SPLITS).build(out)
    return out, manifest


@pytest.fixture(scope="module")
def source_frames() -> dict[int, np.ndarray]:
    """Frames 0, 5, 750 and 1499 of the source, decoded sequentially (no seeking) as the reference."""
    want, got = {0, 5, 750, 1499}, {}
    cap = cv2.VideoCapture(str(SLEAP_DIR / "clip.mp4"))
    for i in range(max(want) + 1):
        ok, frame = cap.read()
        assert ok, f"source frame {i} does not decode"
        if i in want:
            got[i] = frame
    cap.release()
    return got


@pytest.fixture(scope="module")
def slp_points() -> dict[int, dict[int, np.ndarray]]:
    """{frame_idx: {track index + 1: (13, 2) keypoints}} straight from sleap-io."""
    import sleap_io

    labels = sleap_io.load_slp(str(SLEAP_DIR / "clip.slp"), open_videos=False)
    tracks = {id(t): i + 1 for i, t in enumerate(labels.tracks)}
    return {lf.frame_idx: {tracks[id(inst.track)]: inst.numpy() for inst in lf.user_instances}
            for lf in labels.labeled_frames}


@needs_clip
def test_sleap_manifest_and_layout(fly_set: tuple[Path, DatasetManifest]) -> None:
    out, manifest = fly_set
    assert manifest == DatasetManifest("flies", "fly", 2, ["flies-train"], ["flies-eval"])
    assert DatasetManifest.read(out) == manifest
    for name, start in (("flies-train", 0), ("flies-eval", 750)):
        seq = Sequence(out / name)
        assert seq.info.seq_length == 750 and (seq.info.width, seq.info.height) == (1024, 1024)
        # linked, not copied: seqinfo points at the source video resolved next to the .slp
        assert seq.info.video == str((SLEAP_DIR / "clip.mp4").resolve()) and seq.info.video_start == start
        assert not (out / name / "video.mp4").exists()
        assert len(seq.frames()) == 750
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary folders left behind"


@needs_clip
def test_sleap_every_frame_has_both_ids(fly_set: tuple[Path, DatasetManifest]) -> None:
    out, _ = fly_set
    for name in ("flies-train", "flies-eval"):
        gt = Sequence(out / name).gt()
        assert len(gt) == 1500
        assert gt.frame.min() == 1 and gt.frame.max() == 750  # 1-based within the split
        per_frame = {f: set(rows.track_id.tolist()) for f, rows in gt.frame_slices()}
        assert len(per_frame) == 750 and all(ids == {1, 2} for ids in per_frame.values())
        assert np.all(gt.conf == 1) and np.all(gt.cls == 1)
        assert np.all((gt.visibility > 0.5) & (gt.visibility <= 1))


@needs_clip
def test_sleap_boxes_follow_keypoints(fly_set: tuple[Path, DatasetManifest],
                                      slp_points: dict[int, dict[int, np.ndarray]]) -> None:
    out, _ = fly_set
    gt = Sequence(out / "flies-eval").gt()
    for i in range(len(gt)):
        pts = slp_points[750 + int(gt.frame[i]) - 1][int(gt.track_id[i])]
        vis = pts[np.isfinite(pts).all(axis=1)]
        left, top, w, h = gt.box[i]
        # contains every visible keypoint (0.01 px: gt.txt stores 2 decimals) ...
        assert left - 0.01 <= vis[:, 0].min() and vis[:, 0].max() <= left + w + 0.01
        assert top - 0.01 <= vis[:, 1].min() and vis[:, 1].max() <= top + h + 0.01
        # ... with exactly the documented margin: 10% of the extent in total + 4 px per side, clipped
        lo, hi = vis.min(axis=0), vis.max(axis=0)
        pad = 0.1 * (hi - lo) / 2 + 4.0
        want = np.r_[np.maximum(lo - pad, 0), np.minimum(hi + pad, 1024)]
        np.testing.assert_allclose([left, top, left + w, top + h], want, atol=0.011)
        assert gt.visibility[i] == pytest.approx(len(vis) / 13, abs=1e-3)


@needs_clip
def test_sleap_linked_frames_are_source_frames(fly_set: tuple[Path, DatasetManifest],
                                               source_frames: dict[int, np.ndarray]) -> None:
    out, _ = fly_set
    ev = Sequence(out / "flies-eval").frames()
    assert np.array_equal(ev.read(0), source_frames[750])
    assert np.array_equal(ev.read(749), source_frames[1499])
    assert np.array_equal(Sequence(out / "flies-train").frames().read(0), source_frames[0])


@needs_clip
def test_sleap_reencoded_split(tmp_path: Path, source_frames: dict[int, np.ndarray]) -> None:
    manifest = SleapImporter(str(SLEAP_DIR / "clip.slp"), name="f", splits={"train_a": [0, 10], "val": [750, 760]},
                             link_video=False).build(tmp_path)
    assert manifest.train == ["f-train_a"] and manifest.eval == ["f-val"]
    seq = Sequence(tmp_path / "f-val")
    assert (tmp_path / "f-val" / "video.mp4").is_file() and seq.info.video == "video.mp4"
    frames = seq.frames()
    assert len(frames) == 10
    diff = np.abs(frames.read(0).astype(int) - source_frames[750].astype(int)).mean()
    assert diff < 4.0, f"re-encoded frame differs from the source by {diff:.2f} on average"
    assert np.abs(Sequence(tmp_path / "f-train_a").frames().read(5).astype(int)
                  - source_frames[5].astype(int)).mean() < 4.0
    assert Sequence(tmp_path / "f-val").gt().num_frames == 10


@needs_clip
def test_sleap_bad_video_and_splits(tmp_path: Path) -> None:
    slp = str(SLEAP_DIR / "clip.slp")
    with pytest.raises(ConfigError, match=r"'video'"):  # the argument; under a config: data.video
        SleapImporter(slp, video=str(tmp_path / "missing.mp4")).build(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"'splits\.eval'.*1500"):
        SleapImporter(slp, splits={"train": [0, 750], "eval": [750, 2000]}).build(tmp_path / "out")
    assert not (tmp_path / "out" / "dataset.yaml").exists()


# -- a synthetic SLEAP project: the corner cases the real clip does not have ---------------------------------

def _write_video(path: Path, n: int, size: tuple[int, int] = (64, 48)) -> None:
    with VideoWriter(path, 10, size) as w:
        for i in range(n):
            w.write(np.full((size[1], size[0], 3), (7 * i) % 256, np.uint8))


def test_sleap_corner_cases(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import sleap_io as sio

    _write_video(tmp_path / "vid.mp4", 8)
    sk = sio.Skeleton(["a", "b", "c"])
    video = sio.Video(filename="vid.mp4")  # relative: must resolve next to the .slp
    t1, t2 = sio.Track("one"), sio.Track("two")
    nan = [np.nan, np.nan]

    def user(pts: list, track: sio.Track | None) -> sio.Instance:
        return sio.Instance.from_numpy(np.array(pts, float), skeleton=sk, track=track)

    def pred(pts: list, track: sio.Track) -> sio.PredictedInstance:
        return sio.PredictedInstance.from_numpy(np.array(pts, float), skeleton=sk, track=track, score=0.9)

    frames = [
        sio.LabeledFrame(video, 0, [user([[10, 10], [20, 30], nan], t1), user([[40, 5], [60, 20], [50, 10]], t2)]),
        sio.LabeledFrame(video, 1, [user([[10, 10], nan, nan], t1),  # one visible point: skipped
                                    user([[1, 1], [5, 5], [3, 3]], None)]),  # no track: skipped
        sio.LabeledFrame(video, 2, [pred([[30, 30], [40, 40], [35, 35]], t2)]),  # predicted only
        sio.LabeledFrame(video, 3, [user([[10, 10], [20, 20], nan], t1), pred([[30, 30], [40, 40], nan], t2)]),
        # frame 4: no labels at all
        sio.LabeledFrame(video, 5, [user([[-5, 30], [70, 47], nan], t2)]),  # beyond the image: clipped
    ]
    sio.save_slp(sio.Labels(frames, videos=[video], skeletons=[sk], tracks=[t1, t2]), str(tmp_path / "p.slp"))

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="samqa_framework.data.importers"):
        manifest = SleapImporter(str(tmp_path / "p.slp"), name="s", splits={"train": [0, 6]},
                                 margin_frac=0.0, margin_px=1.0).build(out)
    assert "skipped 1 instance(s) with fewer than 2 visible keypoints" in caplog.text
    assert "skipped 1 instance(s) with no track" in caplog.text
    assert manifest.train == ["s-train"] and manifest.eval == [] and manifest.num_animals == 2
    gt = read_mot(out / "s-train" / "gt" / "gt.txt")
    rows = {(int(f), int(t)): b.tolist() for f, t, b in zip(gt.frame, gt.track_id, gt.box, strict=True)}
    assert rows == {(1, 1): [9, 9, 12, 22], (1, 2): [39, 4, 22, 17],  # 1 px margin per side
                    (4, 1): [9, 9, 12, 12],  # predicted t2 ignored: frame has a user instance
                    (6, 2): [0, 29, 64, 19]}  # clipped to the 64x48 image
    assert gt.visibility[(gt.frame == 1) & (gt.track_id == 1)][0] == pytest.approx(2 / 3, abs=1e-3)

    manifest = SleapImporter(str(tmp_path / "p.slp"), name="s", splits={"train": [0, 6]}, margin_frac=0.0,
                             margin_px=1.0, use_predicted=True).build(out)
    gt = read_mot(out / "s-train" / "gt" / "gt.txt")
    assert gt.rows_of(3).track_id.tolist() == [2] and gt.rows_of(3).box.tolist() == [[29, 29, 12, 12]]
    assert gt.rows_of(4).track_id.tolist() == [1]  # still only the user instance where one exists
    assert len(gt.rows_of(5)) == 0


# -- MOTChallenge folders --------------------------------------------------------------------------------------

def _make_mot_seq(root: Path, n: int, rows: list[tuple], with_ini: bool = False) -> list[np.ndarray]:
    (root / "img1").mkdir(parents=True)
    imgs = []
    for i in range(n):
        img = np.zeros((24, 32, 3), np.uint8)
        img[:, :, 0] = i * 20
        img[i, i, 1] = 255
        cv2.imwrite(str(root / "img1" / f"{i + 1:06d}.png"), img)
        imgs.append(img)
    (root / "gt").mkdir()
    (root / "gt" / "gt.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    if with_ini:
        SeqInfo(name="whatever", frame_rate=12, seq_length=n, width=32, height=24, im_ext=".png").write(
            root / "seqinfo.ini")
    return imgs


def test_mot_importer_folder_of_sequences(tmp_path: Path) -> None:
    src = tmp_path / "src"
    imgs_a = _make_mot_seq(src / "seqA", 4, [(1, 1, 2, 2, 5, 5, 1, 1, 1), (1, 2, 10, 2, 5, 5, 1, 1, 1),
                                             (3, 1, 2, 2, 5, 5, 1, 1, 1)])
    _make_mot_seq(src / "seqB", 5, [(2, 7, 0, 0, 4, 4, 1, 1, 1), (2, 8, 5, 5, 4, 4, 1, 1, 1),
                                    (2, 9, 9, 9, 4, 4, 1, 1, 1), (2, 10, 1, 1, 3, 3, 0, 1, 1)], with_ini=True)
    (src / "notes").mkdir()  # not a sequence: ignored
    out = tmp_path / "out"
    manifest = MotChallengeImporter(str(src), species="ant", train=["seqA"]).build(out)
    assert manifest == DatasetManifest("src", "ant", 3, ["seqA"], ["seqB"])  # flag-0 row not counted
    assert DatasetManifest.read(out) == manifest
    assert (out / "seqA" / "img1").is_symlink() and (out / "seqA" / "img1").resolve() == (src / "seqA" / "img1")
    assert not (src / "seqA" / "seqinfo.ini").exists(), "the source must not be written to"
    seq = Sequence(out / "seqA")
    assert (seq.info.seq_length, seq.info.width, seq.info.height, seq.name) == (4, 32, 24, "seqA")
    assert np.array_equal(seq.frames().read(2), imgs_a[2])
    gt = seq.gt()
    assert len(gt) == 3 and gt.rows_of(1).track_id.tolist() == [1, 2]
    seq_b = Sequence(out / "seqB")
    assert seq_b.name == "seqB" and seq_b.info.frame_rate == 12 and len(seq_b.frames()) == 5
    assert not (out / "notes").exists()

    with pytest.raises(ConfigError, match=r"'train'.*seqC"):
        MotChallengeImporter(str(src), train=["seqC"]).build(tmp_path / "out2")


def test_mot_importer_single_sequence(tmp_path: Path) -> None:
    _make_mot_seq(tmp_path / "clipX", 3, [(1, 1, 2, 2, 5, 5, 1, 1, 1)])
    manifest = MotChallengeImporter(str(tmp_path / "clipX"), name="d", num_animals=4).build(tmp_path / "out")
    assert manifest == DatasetManifest("d", "animal", 4, [], ["clipX"])
    assert read_mot(tmp_path / "out" / "clipX" / "gt" / "gt.txt").box.tolist() == [[2, 2, 5, 5]]


@pytest.mark.parametrize("name", ["../x", "a/b", ".."])
def test_a_data_set_name_that_is_a_path_is_refused(tmp_path: Path, name: str) -> None:
    for importer, kwargs in ((MotChallengeImporter, {"source": str(tmp_path)}),
                             (SleapImporter, {"slp": str(tmp_path / "x.slp")})):
        with pytest.raises(ConfigError, match="data set name") as err:
            importer(name=name, **kwargs)
        assert err.value.key == "name"  # under the config: data.name


def test_mot_importer_rejects_gt_beyond_frames(tmp_path: Path) -> None:
    src = tmp_path / "bad"
    _make_mot_seq(src, 3, [(1, 1, 2, 2, 5, 5, 1, 1, 1), (2, 1, 2, 2, 5, 5, 1, 1, 1), (9, 1, 2, 2, 5, 5, 1, 1, 1)])
    with pytest.raises(DataFormatError) as err:
        MotChallengeImporter(str(src)).build(tmp_path / "out")
    assert err.value.path == str(src / "gt" / "gt.txt") and err.value.line == 3
    assert "gt.txt:3" in str(err.value) and "frame 9" in str(err.value)
    assert not (tmp_path / "out" / "bad").exists() and not (tmp_path / "out" / "dataset.yaml").exists()


def test_mot_importer_rejects_truncated_video(tmp_path: Path) -> None:
    seq = tmp_path / "vidseq"
    _write_video(seq / "video.mp4", 30)
    write_mot(seq / "gt" / "gt.txt", MotTable(np.array([1]), np.array([1]), np.array([[1, 1, 5, 5]])))
    data = (seq / "video.mp4").read_bytes()
    (seq / "video.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"video\.mp4"):
        MotChallengeImporter(str(seq)).build(tmp_path / "out")
    assert not (tmp_path / "out" / "vidseq").exists()


def test_mot_importer_never_writes_into_a_users_folder(tmp_path: Path) -> None:
    _make_mot_seq(tmp_path / "src" / "seqA", 3, [(1, 1, 2, 2, 5, 5, 1, 1, 1)])
    out = tmp_path / "out"
    (out / "seqA").mkdir(parents=True)  # the user's folder of the same name as the sequence
    (out / "seqA" / "mine.txt").write_text("keep\n")
    with pytest.raises(DataFormatError, match=r"out: exists and holds seqA but no import.json.*out_dir"):
        MotChallengeImporter(str(tmp_path / "src")).build(out)
    assert sorted(p.name for p in out.rglob("*")) == ["mine.txt", "seqA"]
    # a folder an import made is the import's: importing again replaces its own sequences
    MotChallengeImporter(str(tmp_path / "src")).build(tmp_path / "fresh")
    manifest = MotChallengeImporter(str(tmp_path / "src")).build(tmp_path / "fresh")
    assert manifest.eval == ["seqA"] and (tmp_path / "fresh" / "import.json").is_file()


def test_sleap_importer_never_writes_into_a_users_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sleap-train").mkdir()
    with pytest.raises(DataFormatError, match=r"no import\.json"):
        SleapImporter(slp=str(tmp_path / "x.slp")).build(out)
    assert [p.name for p in out.iterdir()] == ["sleap-train"]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_mot_importer_names_a_damaged_frame_in_the_middle(tmp_path: Path, damage: str) -> None:
    src = tmp_path / "seqJ"
    (src / "img1").mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(src / "img1" / f"{i + 1:06d}.jpg"), np.full((24, 32, 3), 40 * i, np.uint8))
    write_mot(src / "gt" / "gt.txt", MotTable(np.array([1]), np.array([1]), np.array([[1, 1, 5, 5]])))
    bad = src / "img1" / "000003.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a jpeg at all" * 4)
    with pytest.raises(DataFormatError, match="frame 3") as err:
        MotChallengeImporter(str(src)).build(tmp_path / "out")
    assert err.value.path == str(bad)
    assert not (tmp_path / "out" / "seqJ").exists()
