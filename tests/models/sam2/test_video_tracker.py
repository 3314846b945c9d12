from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.models.sam2.build import build_sam2_model
from samqa_framework.models.sam2.video_tracker import Sam2ChunkTracker
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE

H, W = 40, 56  # not the model size: masks must come back at the frames' size


@pytest.fixture(scope="module")
def video_model(sam2_checkpoint: Path):
    return build_sam2_model(SAM2_CONFIG, sam2_checkpoint, image_size=SAM2_TEST_SIZE, video=True)


def _frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]  # a slowly panning scene


BOXES = {7: np.array([2, 3, 20, 30]), 3: np.array([30, 5, 55, 39], np.float32)}


def test_chunk_yields_every_frame_and_object_at_frame_size(video_model, tmp_path: Path) -> None:
    tracker = Sam2ChunkTracker(video_model, tmp_path / "work")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. sam2's per-frame "cannot fill holes" warning
        out = list(tracker.track_chunk(_frames(3), BOXES))
    assert [offset for offset, _ in out] == [0, 1, 2]
    for _, masks in out:
        assert set(masks) == {3, 7}
        assert all(m.shape == (H, W) and m.dtype == bool for m in masks.values())
    assert tracker.frames_tracked == 3
    assert list((tmp_path / "work").iterdir()) == []  # the chunk's JPEG folder is gone


def test_chunks_are_independent_and_cleaned_up_when_stopped_early(video_model, tmp_path: Path) -> None:
    tracker = Sam2ChunkTracker(video_model, tmp_path)
    first = dict(tracker.track_chunk(_frames(2), BOXES))
    again = dict(tracker.track_chunk(_frames(2), BOXES))  # same chunk, same prompts: same masks (no leftover state)
    for offset in first:
        for obj in BOXES:
            assert np.array_equal(first[offset][obj], again[offset][obj])
    gen = tracker.track_chunk(_frames(3), {1: np.array([0, 0, 10, 10])})
    offset, masks = next(gen)
    assert offset == 0 and set(masks) == {1}
    assert len(list(tmp_path.iterdir())) == 1  # the chunk's frames are on disk while it is tracked
    gen.close()
    assert list(tmp_path.iterdir()) == []


def test_no_objects_and_bad_input(video_model, tmp_path: Path) -> None:
    tracker = Sam2ChunkTracker(video_model, tmp_path)
    assert list(tracker.track_chunk(_frames(2), {})) == [(0, {}), (1, {})]
    assert list(tracker.track_chunk([], BOXES)) == []
    with pytest.raises(ValueError, match="one size"):
        list(tracker.track_chunk([_frames(1)[0], np.zeros((H + 1, W, 3), np.uint8)], BOXES))
    with pytest.raises(ValueError, match="object 3"):
        list(tracker.track_chunk(_frames(1), {3: np.array([1, 2, 3])}))
    with pytest.raises(TypeError, match="video=True"):
        Sam2ChunkTracker(build_sam2_model(SAM2_CONFIG, None, image_size=SAM2_TEST_SIZE, allow_random=True), tmp_path)
    assert list(tmp_path.iterdir()) == []
