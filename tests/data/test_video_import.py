"""Importing your own, unlabelled video: a video file, a folder of videos, a folder of frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from samqa_framework.data.claim import IMPORT_RECORD
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.data.video_import import VideoImporter
from samqa_framework.utils.errors import ConfigError, DataFormatError


def write_video(path: Path, n: int, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> list[np.ndarray]:
    """A small mp4v video whose frame i is grey level 8 i (what the tests decode back), written by OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = [np.full((size[1], size[0], 3), (8 * i) % 256, np.uint8) for i in range(n)]
    for f in frames:
        writer.write(f)
    writer.release()
    return frames


def write_frames(folder: Path, n: int, ext: str = ".png", size: tuple[int, int] = (40, 30)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):  # unpadded names: frame_2 must come before frame_10
        cv2.imwrite(str(folder / f"frame_{i}{ext}"), np.full((size[1], size[0], 3), 10 * i, np.uint8))


def test_a_video_file_split_by_frame_range(tmp_path: Path) -> None:
    write_video(tmp_path / "my clip.mp4", 30)
    out = tmp_path / "out"
    manifest = VideoImporter(str(tmp_path / "my clip.mp4"), num_animals=2,
                             splits={"train": [0, 20], "eval": [20, None]}).build(out)
    assert manifest == DatasetManifest("my_clip", "animal", 2, ["my_clip-train"], ["my_clip-eval"])
    train, evaluate = (Sequence(out / n) for n in ("my_clip-train", "my_clip-eval"))
    info = train.info
    assert (info.seq_length, evaluate.info.seq_length, info.width, info.frame_rate) == (20, 10, 64, 10)
    assert not train.has_gt() and not (out / "my_clip-train" / "video.mp4").exists()  # linked, never copied
    assert round(float(evaluate.frames().read(0).mean()) / 8) == 20  # frame 20 of the source (grey level 8 i)
    assert [round(float(f.mean()) / 8) for f in train.frames()] == list(range(20))


def test_a_folder_of_videos_and_a_folder_of_frames(tmp_path: Path) -> None:
    write_video(tmp_path / "videos" / "a.mp4", 12)
    write_video(tmp_path / "videos" / "b.avi", 8)
    manifest = VideoImporter(str(tmp_path / "videos"), num_animals=3, splits={"train": [0, 6], "test": [6, None]}
                             ).build(tmp_path / "out")
    assert manifest.train == ["a-train", "b-train"] and manifest.eval == ["a-test", "b-test"]
    assert Sequence(tmp_path / "out" / "b-test").info.seq_length == 2

    write_frames(tmp_path / "frames", 12)
    manifest = VideoImporter(str(tmp_path / "frames"), num_animals=1, fps=25, splits={"train": [2, None]}
                             ).build(tmp_path / "out2")
    seq = Sequence(tmp_path / "out2" / "frames-train")
    assert manifest.train == ["frames-train"] and seq.info.seq_length == 10 and seq.info.frame_rate == 25
    assert [int(f[0, 0, 0]) for f in seq.frames()] == [10 * i for i in range(2, 12)]  # numeric order, from frame 2


def test_unlabelled_import_needs_num_animals_and_a_decodable_video(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", 5)
    with pytest.raises(ConfigError, match=r"'num_animals'"):
        VideoImporter(str(tmp_path / "v.mp4"))
    with pytest.raises(ConfigError, match=r"'source'.*missing\.mp4"):
        VideoImporter(str(tmp_path / "missing.mp4"), num_animals=1)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(DataFormatError) as err:
        VideoImporter(str(tmp_path / "broken.mp4"), num_animals=1).build(tmp_path / "out")
    assert err.value.path == str(tmp_path / "broken.mp4")
    data = (tmp_path / "v.mp4").read_bytes()  # truncated: the header promises frames that never come
    write_video(tmp_path / "long.mp4", 60)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "long.mp4").read_bytes()[:len(data)])
    with pytest.raises(DataFormatError, match=r"cut\.mp4"):
        VideoImporter(str(tmp_path / "cut.mp4"), num_animals=1).build(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"'splits\.eval'.*0 <= start < stop <= 5"):
        VideoImporter(str(tmp_path / "v.mp4"), num_animals=1, splits={"eval": [3, 9]}).build(tmp_path / "out")


def test_an_import_never_writes_into_a_user_folder_and_reuses_its_own(tmp_path: Path) -> None:
    write_video(tmp_path / "v.mp4", 6)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataFormatError, match=r"notes\.txt.*nothing is written") as err:
        VideoImporter(str(tmp_path / "v.mp4"), num_animals=1).build(mine)
    assert err.value.path == str(mine) and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    run = tmp_path / "run"  # a Hydra run folder (samqa-generate's default out_dir) is fine
    (run / ".hydra").mkdir(parents=True)
    (run / "generate.log").write_text("")
    VideoImporter(str(tmp_path / "v.mp4"), num_animals=1).build(run)
    stamp = (run / "v-train" / "seqinfo.ini").stat().st_mtime_ns
    assert VideoImporter(str(tmp_path / "v.mp4"), num_animals=1).build(run).num_animals == 1  # reused as is
    assert (run / "v-train" / "seqinfo.ini").stat().st_mtime_ns == stamp
    VideoImporter(str(tmp_path / "v.mp4"), num_animals=2).build(run)  # another config: imported again
    assert DatasetManifest.read(run).num_animals == 2 and json.loads((run / IMPORT_RECORD).read_text())["complete"]


def _peak_rss_of_import(tmp_path: Path, frames: int) -> int:
    video = tmp_path / f"v{frames}.mp4"
    write_video(video, frames, size=(320, 240))
    code = ("from pathlib import Path\n"
            "from samqa_framework.data.video_import import VideoImporter\n"
            "from samqa_framework.data.sequence import DatasetManifest\n"
            f"m = VideoImporter({str(video)!r}, num_animals=2).build(Path({str(tmp_path / f'o{frames}')!r}))\n"
            f"seq = m.sequences({str(tmp_path / f'o{frames}')!r}, 'train')[0]\n"
            "assert sum(1 for _ in seq.frames()) == seq.info.seq_length\n"
            # VmHWM: this process's own peak (ru_maxrss would carry the forking test process's over exec)
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True)
    return int(proc.stdout.split()[-1])


def test_import_and_reading_stream_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    short, long = _peak_rss_of_import(tmp_path, 50), _peak_rss_of_import(tmp_path, 1000)
    assert long < short * 1.15 + 10_000, (short, long)  # kB: 20x the frames, about the same memory


def test_the_video_config_names_the_data_set_after_its_source(compose_cfg, tmp_path: Path) -> None:
    write_video(tmp_path / "arena_2.mp4", 5)
    cfg = compose_cfg("annotate", ["data=video", f"data.source={tmp_path / 'arena_2.mp4'}", "model.image_size=64"])
    assert cfg.data.name == "arena_2" and cfg.paths.dataset_dir.endswith("/arena_2-imported")
