"""Grounding DINO annotator: a tiny random Grounding DINO through the runner, and its identity carrying."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.grounding_dino import GroundingDinoAnnotator
from samqa_framework.annotate.manual import MixedAnnotator
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError
from tests.models.helpers_checkpoints import write_tiny_grounding_dino


@pytest.fixture(scope="module")
def gdino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_grounding_dino(tmp_path_factory.mktemp("gdino") / "grounding-dino-tiny-random")


class ScriptedDetector:
    """Boxes given per call, in order (the identity logic apart from a model)."""

    def __init__(self, frames: list[list[list[float]]]) -> None:
        self.frames = iter(frames)
        self.calls: list[tuple[str, int]] = []

    def detect(self, image: np.ndarray, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append((text, k))
        boxes = np.asarray(next(self.frames), dtype=np.float32).reshape(-1, 4)[:k]
        return boxes, np.linspace(0.9, 0.5, len(boxes), dtype=np.float32)


def test_runs_on_a_sequence_with_the_data_sets_species_and_count(gdino_dir: Path, seq: Sequence,
                                                                 tmp_path: Path) -> None:
    annotator = GroundingDinoAnnotator(str(gdino_dir))
    result = annotate_sequence(annotator, seq, tmp_path / "labels", {}, max_frames=4, progress=False)
    assert annotator.prompt == "rat" and annotator.num_animals == 2  # from dataset.yaml
    records = list(LabelStore(tmp_path / "labels", {}).records())
    assert [r.frame for r in records] == [1, 2, 3, 4] and result.quality["frames"] == 4
    assert [sorted(i.track_id for i in r.instances) for r in records[:1]] == [[1, 2]]
    for r in records:
        assert len(r.instances) == 2 and r.interventions == r.prompts == 0
        for inst in r.instances:
            assert inst.mask is None and 0 < inst.score < 1
            assert 0 <= inst.box[0] < inst.box[2] <= seq.info.width and 0 <= inst.box[1] < inst.box[3] <= 120
    assert result.quality["mean_mask_iou"] is None  # box-only labels
    fixed = GroundingDinoAnnotator(str(gdino_dir), text="mouse", num_animals=1)
    annotate_sequence(fixed, seq, tmp_path / "fixed", {}, max_frames=2, progress=False, num_animals=2)
    assert fixed.prompt == "mouse" and all(len(r.instances) == 1 for r in LabelStore(tmp_path / "fixed").records())


def test_identities_follow_box_overlap(gdino_dir: Path, seq: Sequence) -> None:
    annotator = GroundingDinoAnnotator(str(gdino_dir))
    a, b, far = [10, 10, 40, 40], [80, 60, 120, 100], [130, 5, 150, 20]
    annotator.detector = ScriptedDetector([[a, b], [[82, 62, 121, 101], [12, 11, 41, 42]], [far, a], [a, b]])
    annotator.start(seq, num_animals=2)
    ids = []
    for frame in range(1, 5):
        labels = annotator.step(frame, np.zeros((120, 160, 3), np.uint8))
        annotator.commit(labels)
        ids.append([i.track_id for i in labels.instances])
    # frame 2 lists the boxes in the other order; frame 3: a box overlapping nothing gets a new identity, and the
    # returning box takes the identity it overlaps; frame 4: b is back after a gap of one frame: a new identity
    assert ids == [[1, 2], [2, 1], [3, 1], [1, 4]]
    assert annotator.detector.calls[0] == ("rat", 2)


def test_mixed_with_manual_frames_continues_their_identities(gdino_dir: Path, seq: Sequence, tmp_path: Path) -> None:
    gt = seq.gt()
    base = GroundingDinoAnnotator(str(gdino_dir))
    shifted = [(gt.rows_of(f).xyxy + 1.0).tolist() for f in (2, 3)]  # near the true boxes, in reversed order
    base.detector = ScriptedDetector([s[::-1] for s in shifted])
    mixed = MixedAnnotator(base, every=3)
    assert mixed.name == "grounding_dino+manual3"
    annotate_sequence(mixed, seq, tmp_path / "labels", {}, max_frames=4, progress=False)
    records = list(LabelStore(tmp_path / "labels", {}).records())
    assert [r.interventions for r in records] == [1, 0, 0, 1]
    for r in records[1:3]:  # the detector's frames keep the ground-truth identities of frame 1
        rows = gt.rows_of(r.frame)
        truth = {int(i): box for i, box in zip(rows.track_id, rows.xyxy, strict=True)}
        assert sorted(r.by_id()) == sorted(truth)
        for track_id, inst in r.by_id().items():
            np.testing.assert_allclose(inst.box, truth[track_id] + 1.0, atol=1e-3)


def test_missing_model_or_manifest_name_the_key(gdino_dir: Path, seq: Sequence, tmp_path: Path) -> None:
    # the arguments are named; a config names them under its node (annotator.model_dir: tests/test_configs.py)
    with pytest.raises(ConfigError, match=r"'model_dir'"):
        GroundingDinoAnnotator(None)
    with pytest.raises(ConfigError, match=r"'model_dir'.*not found"):
        GroundingDinoAnnotator(str(tmp_path / "nowhere"))
    lone = Sequence(shutil.copytree(seq.root, tmp_path / "alone" / seq.root.name))  # no dataset.yaml beside it
    with pytest.raises(ConfigError, match=r"'text'.*dataset\.yaml"):
        GroundingDinoAnnotator(str(gdino_dir)).start(lone, num_animals=2)
    with pytest.raises(ConfigError, match=r"'base\.text'.*dataset\.yaml"):  # the mixed method's own argument
        MixedAnnotator(GroundingDinoAnnotator(str(gdino_dir)), every=3).start(lone, num_animals=2)
    named = GroundingDinoAnnotator(str(gdino_dir), text="rat")
    named.start(lone, num_animals=2)
    assert named.prompt == "rat" and named.num_animals == 2


def test_no_detection_is_an_empty_labelled_frame(gdino_dir: Path, seq: Sequence) -> None:
    annotator = GroundingDinoAnnotator(str(gdino_dir))
    annotator.detector = ScriptedDetector([[]])
    annotator.start(seq, num_animals=2)
    labels = annotator.step(1, np.zeros((120, 160, 3), np.uint8))
    assert labels == FrameLabels(1)  # nothing found is an empty labelled frame, not a skipped one


def test_configs_build_with_a_model_folder(compose_cfg, gdino_dir: Path) -> None:
    """annotator=grounding_dino and annotator=grounding_dino_manual as the CLI composes them."""
    from hydra.utils import instantiate

    cfg = compose_cfg("annotate", ["annotator=grounding_dino", f"annotator.model_dir={gdino_dir}"])
    alone = instantiate(cfg.annotator, _convert_="all")
    assert isinstance(alone, GroundingDinoAnnotator) and alone.text is None
    cfg = compose_cfg("annotate", ["annotator=grounding_dino_manual", f"annotator.base.model_dir={gdino_dir}"])
    mixed = instantiate(cfg.annotator, _convert_="all")
    assert isinstance(mixed, MixedAnnotator) and isinstance(mixed.base, GroundingDinoAnnotator)
    assert mixed.manual.every == 15 and mixed.name == "grounding_dino+manual15"
