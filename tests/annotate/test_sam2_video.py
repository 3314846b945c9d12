"""SAM 2 video annotator (random-weight SAM 2: arbitrary but deterministic masks); annotator=samqa_sam2 built from
its config (SAM-QA's recovery itself: tests/annotate/samqa/test_sam2_recovery.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.base import FrameLabels, mask_box
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.annotate.prompts import OraclePrompts
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.sam2_video import Sam2VideoAnnotator
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.models.sam2.build import build_sam2_model
from samqa_framework.models.sam2.image_predictor import Sam2PointPredictor
from samqa_framework.utils.errors import ConfigError
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE, write_random_sam2_checkpoint

INTERVAL, FRAMES = 5, 12  # chunks 1-5, 6-10, 11-15 (the last one stopped at 12)



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2_random.pt", SAM2_TEST_SIZE)


@pytest.fixture(scope="module")
def video_model(checkpoint: Path):
    return build_sam2_model(SAM2_CONFIG, checkpoint, image_size=SAM2_TEST_SIZE, video=True)


def _records(path: Path) -> list[str]:
    return path.joinpath("labels.jsonl").read_text().splitlines()


def test_prompts_every_interval_and_streams_chunk_by_chunk(video_model, seq: Sequence, tmp_path: Path) -> None:
    annotator = Sam2VideoAnnotator(video_model, OraclePrompts(), prompt_interval=INTERVAL, work_dir=tmp_path / "work")
    assert annotator.name == "sam2_video/5"
    result = annotate_sequence(annotator, seq, tmp_path / "labels", {}, max_frames=FRAMES, progress=False)
    records = list(LabelStore(tmp_path / "labels", {}).records())
    gt = GroundTruthFrames(seq, masks=False)
    assert [r.frame for r in records if r.interventions] == [1, 6, 11]
    assert all(r.interventions == 1 for r in records if r.interventions)
    assert [r.prompts for r in records if r.frame in (1, 6, 11)] == [len(gt.boxes(f)) for f in (1, 6, 11)]
    assert result.counts["prompts"] == sum(len(gt.boxes(f)) for f in (1, 6, 11)) > 0
    assert sum(r.prompts for r in records if not r.interventions) == 0
    pixels = set()
    for r in records:
        assert {i.track_id for i in r.instances} <= set(gt.boxes(annotator.prompt_frame(r.frame)))
        for inst in r.instances:
            assert inst.mask.shape == (seq.info.height, seq.info.width) and inst.mask.any()
            np.testing.assert_array_equal(inst.box, mask_box(inst.mask))
            pixels.add(int(inst.mask.sum()))
    assert len(pixels) > 3  # random weights, yet masks that change from frame to frame (the resume test needs it)
    assert annotator.tracker.frames_tracked == FRAMES  # the last chunk was tracked only as far as it was asked
    assert list((tmp_path / "work").iterdir()) == []  # every chunk's frames removed


class Crash(Exception):
    pass


class CrashingSam2(Sam2VideoAnnotator):
    crash_at = 0

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if frame == self.crash_at:
            raise Crash(frame)
        return super().step(frame, image)


def test_crash_and_resume_inside_a_chunk_gives_the_uninterrupted_labels(video_model, seq: Sequence,
                                                                         tmp_path: Path) -> None:
    full = Sam2VideoAnnotator(video_model, OraclePrompts(), prompt_interval=INTERVAL, work_dir=tmp_path / "work")
    annotate_sequence(full, seq, tmp_path / "full", {"m": 1}, max_frames=FRAMES, progress=False)
    for crash_at in (8, 6):  # inside the second chunk, and on its prompt frame
        out = tmp_path / f"crash{crash_at}"
        crashing = CrashingSam2(video_model, OraclePrompts(), prompt_interval=INTERVAL, work_dir=tmp_path / "work")
        crashing.crash_at = crash_at
        with pytest.raises(Crash):
            annotate_sequence(crashing, seq, out, {"m": 1}, max_frames=FRAMES, progress=False)
        assert len(_records(out)) == crash_at - 1
        resumed = Sam2VideoAnnotator(video_model, OraclePrompts(), prompt_interval=INTERVAL,
                                     work_dir=tmp_path / "work")
        result = annotate_sequence(resumed, seq, out, {"m": 1}, max_frames=FRAMES, progress=False)
        assert _records(out) == _records(tmp_path / "full")
        assert result.counts["interventions"] == 3  # the recomputed prompt frame is not counted twice
    assert list((tmp_path / "work").iterdir()) == []  # the crashed runs' chunks were cleaned up too


def test_prompt_interval_is_checked(video_model) -> None:
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match=r"'prompt_interval'"):
            Sam2VideoAnnotator(video_model, OraclePrompts(), prompt_interval=bad)


def test_configs_build_with_a_checkpoint(compose_cfg, checkpoint: Path) -> None:
    """annotator=sam2_video and annotator=samqa_sam2 as the CLI composes them, with the checkpoint given."""
    from hydra.utils import instantiate

    sam2 = [f"annotator.sam2.checkpoint={checkpoint}", f"annotator.sam2.image_size={SAM2_TEST_SIZE}"]
    cfg = compose_cfg("annotate", ["annotator=sam2_video", *sam2, "annotator.prompt_interval=30"])
    video = instantiate(cfg.annotator, _convert_="all")
    assert isinstance(video, Sam2VideoAnnotator) and video.name == "sam2_video/30"
    assert isinstance(video.prompts, OraclePrompts) and video.tracker.model.image_size == SAM2_TEST_SIZE
    cfg = compose_cfg("annotate", ["annotator=samqa_sam2", *sam2, "model.image_size=64"])
    assert cfg.annotator.qa.overlap_thresh == cfg.qa.overlap_thresh  # everything of annotator=samqa is kept
    samqa = instantiate(cfg.annotator, _convert_="all")
    assert isinstance(samqa, SamQaAnnotator) and samqa.name == "samqa+sam2"
    assert isinstance(samqa.recovery_predictor, Sam2PointPredictor) and samqa.recovery_predictor is not samqa.predictor
