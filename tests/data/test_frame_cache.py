"""data/frame_cache.py: decoded frames cached once, in order, read back byte for byte."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from samqa_framework.data import frame_cache
from samqa_framework.data.datamodules import BoxPromptDataModule, FramesDataModule, FramesDataset, VideoFramesDataModule
from samqa_framework.data.frame_cache import FrameCache, cache_key
from samqa_framework.data.segmentation_datamodule import SegmentationDataModule
from samqa_framework.data.sequence import DatasetManifest, SeqInfo, Sequence
from samqa_framework.data.video import ImageFolderReader, VideoReader, VideoWriter

FRAMES = [21, 3, 0, 7, 8, 39, 20]  # out of order, gaps of 1, 3, 12...: not one stride


def _train_seq(root: Path) -> Sequence:
    return DatasetManifest.read(root).sequences(root, "train")[0]


def _as_frame_folder(seq: Sequence, out: Path) -> Sequence:
    """``seq`` as a MOTChallenge folder of PNG frames (lossless: its frames are the video's decoded frames)."""
    (out / "img1").mkdir(parents=True)
    for i, frame in enumerate(seq.frames()):
        cv2.imwrite(str(out / "img1" / f"{i + 1:06d}.png"), frame)
    info = seq.info
    SeqInfo(name=info.name, frame_rate=info.frame_rate, seq_length=info.seq_length, width=info.width,
            height=info.height, im_ext=".png").write(out / "seqinfo.ini")
    return Sequence(out)


def _expected(seq: Sequence, frame: int) -> np.ndarray:
    """What an uncached ``FramesBase.read_rgb`` gives: a seek into the source, BGR -> RGB."""
    return cv2.cvtColor(seq.frames().read(frame), cv2.COLOR_BGR2RGB)


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a frame")

    for reader in (VideoReader, ImageFolderReader):
        monkeypatch.setattr(reader, "iter_range", refuse)
        monkeypatch.setattr(reader, "read", refuse)


@pytest.mark.parametrize("kind", ["mp4", "img1"])
def test_cached_frames_are_the_frames_read_rgb_gives(tiny_rats: Path, tmp_path: Path, kind: str) -> None:
    seq = _train_seq(tiny_rats)
    if kind == "img1":
        seq = _as_frame_folder(seq, tmp_path / "seq")
        assert isinstance(seq.frames(), ImageFolderReader)
    cache = FrameCache.ensure(tmp_path / "cache", seq, FRAMES)
    assert cache is not None and cache.path.is_file()
    assert cache.frames.tolist() == sorted(FRAMES)
    on_disk = np.load(cache.path, mmap_mode="r")
    assert on_disk.dtype == np.uint8 and on_disk.shape == (len(FRAMES), 120, 160, 3)
    for frame in FRAMES:
        row = cache.read(cache.row(frame))
        assert row.flags.owndata and row.flags.writeable  # a copy, not a view of the read-only map
        np.testing.assert_array_equal(row, _expected(seq, frame))


def test_the_same_frames_reuse_the_file_without_decoding(tiny_rats: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seq = _train_seq(tiny_rats)
    first = FramesDataset([seq], [(0, f) for f in FRAMES], 64, frame_cache=tmp_path / "cache")
    expected = [first.read_rgb(i) for i in range(len(first))]
    mtime = first._caches[0].path.stat().st_mtime_ns
    copy = tmp_path / "copy"  # another path, the same content: the same key
    shutil.copytree(tiny_rats, copy, copy_function=shutil.copy2)
    _no_decoding(monkeypatch)
    again = FramesDataset([_train_seq(copy)], [(0, f) for f in FRAMES], 64, frame_cache=tmp_path / "cache")
    assert again._caches[0].path == first._caches[0].path and again._caches[0].path.stat().st_mtime_ns == mtime
    for i, frame in enumerate(expected):
        np.testing.assert_array_equal(again.read_rgb(i), frame)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    # another frame list is another file
    assert cache_key(seq, sorted(FRAMES)[1:]) != cache_key(seq, sorted(FRAMES))


def test_a_changed_video_gets_another_file(tiny_rats: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_rats, copy, copy_function=shutil.copy2)
    seq = _train_seq(copy)
    before = FrameCache.ensure(tmp_path / "cache", seq, FRAMES)
    video = seq.root / "video.mp4"
    src = seq.frames()
    with VideoWriter(tmp_path / "new.mp4", src.fps, (src.width, src.height)) as writer:
        for frame in src:
            writer.write(255 - frame)  # other content, same frame count and size
    stat = video.stat()
    shutil.copy(tmp_path / "new.mp4", video)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the content alone tells them apart
    after = FrameCache.ensure(tmp_path / "cache", Sequence(seq.root), FRAMES)
    assert after.path != before.path and before.path.is_file()
    for frame in FRAMES:
        np.testing.assert_array_equal(after.read(after.row(frame)), _expected(seq, frame))
        assert not np.array_equal(after.read(after.row(frame)), before.read(before.row(frame)))


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape", "not_npy"])
def test_a_damaged_file_is_rebuilt_with_a_warning(tiny_rats: Path, tmp_path: Path, own_log, damage: str) -> None:
    seq = _train_seq(tiny_rats)
    path = FrameCache.ensure(tmp_path / "cache", seq, FRAMES).path
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "wrong_shape":
        np.save(path, np.zeros((len(FRAMES), 120, 160), dtype=np.uint8))
    else:
        path.write_bytes(b"not a numpy file")
    log = own_log("samqa_framework.data.frame_cache", logging.WARNING)
    cache = FrameCache.ensure(tmp_path / "cache", seq, FRAMES)
    assert cache.path == path
    warnings = [r.getMessage() for r in log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "rebuilding" in warnings[0]
    for frame in FRAMES:
        np.testing.assert_array_equal(cache.read(cache.row(frame)), _expected(seq, frame))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # the temporary was renamed


def test_a_second_process_waits_for_the_writer_and_reads_its_file(tiny_rats: Path, tmp_path: Path, own_log,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds the key's lock and lands the file: this one waits, then decodes nothing."""
    seq = _train_seq(tiny_rats)
    built = FrameCache.ensure(tmp_path / "elsewhere", seq, FRAMES).path
    key_dir = tmp_path / "cache" / cache_key(seq, sorted(FRAMES))
    key_dir.mkdir(parents=True)
    holder = textwrap.dedent(f"""
        import fcntl, os, shutil, time
        fh = open({str(key_dir / ".lock")!r}, "a+")
        fcntl.flock(fh, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(1.0)
        shutil.copy({str(built)!r}, {str(key_dir / "frames.tmp")!r})
        os.replace({str(key_dir / "frames.tmp")!r}, {str(key_dir / frame_cache.FILE)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        log = own_log("samqa_framework.data.frame_cache", logging.INFO)
        monkeypatch.setattr(FrameCache, "_build", lambda *a: pytest.fail("decoded while another process wrote"))
        cache = FrameCache.ensure(tmp_path / "cache", seq, FRAMES)
    finally:
        proc.wait(timeout=30)
    assert any("waiting" in r.getMessage() for r in log.records)
    np.testing.assert_array_equal(cache.read(0), _expected(seq, sorted(FRAMES)[0]))


def test_a_data_set_pickles_without_its_mapped_frames(tiny_rats: Path, tmp_path: Path) -> None:
    seq = _train_seq(tiny_rats)
    refs = [(0, f) for f in range(40)]  # 40 frames of 160x120: 2.3 MB decoded
    dataset = FramesDataset([seq], refs, 64, frame_cache=tmp_path / "cache")
    first = dataset.read_rgb(5)
    assert len(pickle.dumps(dataset)) < 100_000  # a worker gets the path, and maps the file itself
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(dataset)).read_rgb(5), first)


def _batches(loader: torch.utils.data.DataLoader) -> list[dict]:
    torch.manual_seed(0)
    return list(loader)


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), key
            elif isinstance(x[key], list) and x[key] and isinstance(x[key][0], torch.Tensor):
                assert all(torch.equal(p, q) for p, q in zip(x[key], y[key], strict=True)), key
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize("module", ["box_prompts", "frames", "segmentation"])
def test_batches_with_the_cache_are_the_batches_without_it(tiny_rats: Path, tmp_path: Path, module: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def make(cache: str | None) -> VideoFramesDataModule:
        if module == "box_prompts":
            dm = BoxPromptDataModule(str(tiny_rats), image_size=64, every=2, val_every=5, batch_size=4,
                                     frame_cache_dir=cache)
        elif module == "segmentation":
            dm = SegmentationDataModule(str(tiny_rats), image_size=64, num_labelled=12, val_every=5, batch_size=4,
                                        frame_cache_dir=cache)
        else:
            dm = FramesDataModule(str(tiny_rats), image_size=64, every=3, val_every=4, batch_size=4, vflip=True,
                                  crop={"enabled": True}, frame_cache_dir=cache)
        dm.setup("fit")
        return dm

    plain = make(None)
    assert not plain.train_set._caches and not (tmp_path / "cache").exists()
    expected = _batches(plain.train_dataloader()), _batches(plain.val_dataloader())
    cached = make(str(tmp_path / "cache"))
    assert len(cached.train_set._caches) == len(cached.train_set.sequences)
    _no_decoding(monkeypatch)  # from here on every frame comes from the cache
    _assert_same(_batches(cached.train_dataloader()), expected[0])
    _assert_same(_batches(cached.val_dataloader()), expected[1])
    cached.num_workers = 1  # a loader worker maps the file itself
    _assert_same(list(cached.val_dataloader()), expected[1])
