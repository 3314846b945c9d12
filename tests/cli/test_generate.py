from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from samqa_framework.data import rle
from samqa_framework.data.sequence import DatasetManifest, Sequence

from .helpers import run_cli


def test_generate_quick_mice_has_four_ids_everywhere_and_masks_match_boxes(tmp_path: Path) -> None:
    """The issue's acceptance check, through the installed console script."""
    out = tmp_path / "mice"
    proc = run_cli("samqa-generate", "data=synthetic_mice", "data.size=quick", f"out_dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = DatasetManifest.read(out)
    assert (manifest.num_animals, len(manifest.train), len(manifest.eval)) == (4, 1, 2)
    for name in manifest.train + manifest.eval:
        seq = Sequence(out / name)
        gt = seq.gt()
        assert (seq.info.width, seq.info.height, seq.info.frame_rate) == (320, 240, 30)
        counts = np.bincount(gt.frame, minlength=seq.info.seq_length + 1)[1:]
        assert counts.tolist() == [4] * seq.info.seq_length, f"{name}: not 4 rows on every frame"
        assert all(set(rows.track_id.tolist()) == {1, 2, 3, 4} for _, rows in gt.frame_slices())
        n = 0
        for frame, inst in rle.iter_masks(seq.masks_path):
            rows = gt.rows_of(frame)
            for tid, box in zip(rows.track_id, rows.box, strict=True):
                mask = rle.decode(inst[int(tid)])
                ys, xs = np.nonzero(mask)
                tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                np.testing.assert_allclose(box, tight, err_msg=f"{name} frame {frame} id {tid}")
            n += 1
        assert n == seq.info.seq_length
        assert len(seq.frames()) == seq.info.seq_length
    assert (out / "preview_synthetic_mice-eval1.png").is_file()


def _mot_folder(root: Path, gt_text: str, frames: int = 4, truncate_video: bool = False) -> Path:
    seq = root / "seq1"
    (seq / "gt").mkdir(parents=True)
    writer = cv2.VideoWriter(str(seq / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    if truncate_video:
        data = (seq / "video.mp4").read_bytes()
        (seq / "video.mp4").write_bytes(data[: len(data) // 3])
    if gt_text:
        (seq / "gt" / "gt.txt").write_text(gt_text)
    return seq


GOOD = "1,1,10,10,20,20,1,1,1\n2,1,11,10,20,20,1,1,1\n"
BAD_INPUTS = {
    "missing_gt": ("", "gt.txt", "not found"),
    "wrong_columns": (GOOD + "3,1,12,10\n", "gt.txt:3", "columns"),
    "nan_box": (GOOD + "3,1,nan,10,20,20,1,1,1\n", "gt.txt:3", "NaN"),
    "negative_box": (GOOD + "3,1,12,10,-20,20,1,1,1\n", "gt.txt:3", "positive"),
    "frame_beyond_video": (GOOD + "9,1,12,10,20,20,1,1,1\n", "gt.txt:3", "beyond"),
    "truncated_video": (GOOD, "video.mp4", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_with_one_clear_error(tmp_path: Path, case: str) -> None:
    gt_text, where, what = BAD_INPUTS[case]
    src = _mot_folder(tmp_path / "src", gt_text, truncate_video=case == "truncated_video")
    out = tmp_path / "out"
    proc = run_cli("samqa-generate", "data=motchallenge", f"data.source={src}", f"out_dir={out}", "preview=false",
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert where in proc.stderr and what in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "dataset.yaml").exists() and not list(out.glob("seq1*"))  # nothing half-written


@pytest.mark.parametrize("override,key", [("data.size=huge", "data.size"),
                                          ("+data.scene.animal.colr=1", "scene.animal.colr"),
                                          ("data.bogus=1", "bogus")])
def test_bad_config_names_the_key(tmp_path: Path, override: str, key: str) -> None:
    proc = run_cli("samqa-generate", override, f"out_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert key in proc.stderr


def test_generate_imports_the_real_sleap_clip(tmp_path: Path, sleap_clip: Path) -> None:
    out = tmp_path / "flies"
    proc = run_cli("samqa-generate", "data=sleap_clip", f"data.slp={sleap_clip / 'clip.slp'}", f"out_dir={out}",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = DatasetManifest.read(out)
    assert manifest.train == ["sleap_clip-train"] and manifest.eval == ["sleap_clip-eval"]
    gt = Sequence(out / "sleap_clip-eval").gt()
    assert gt.num_frames == 750 and set(gt.ids.tolist()) == {1, 2}
    assert (out / "preview_sleap_clip-eval.png").is_file()


def test_generate_imports_your_own_video_into_its_run_folder(tmp_path: Path) -> None:
    from tests.data.test_video_import import write_video

    write_video(tmp_path / "arena.mp4", 30)
    proc = run_cli("samqa-generate", "data=video", f"data.source={tmp_path / 'arena.mp4'}", "data.num_animals=2",
                   "data.splits.train=[0,20]", "data.splits.eval=[20,null]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no ground truth" in proc.stdout  # the summary says what the sequences lack
    out = Path(proc.stdout.strip().splitlines()[-1].removeprefix("data set written to "))
    assert out.parent == tmp_path / "outputs" / "generate"  # the run folder (it holds .hydra/ already)
    assert DatasetManifest.read(out).eval == ["arena-eval"] and (out / "preview_arena-train.png").is_file()
    missing = run_cli("samqa-generate", "data=video", f"data.source={tmp_path / 'arena.mp4'}", cwd=tmp_path)
    assert missing.returncode == 1 and "config key 'data.num_animals'" in missing.stderr
    assert "Traceback" not in missing.stderr
