"""SAM-QA whose recovery prompts SAM 2's image predictor (random-weight SAM 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from samqa_framework.annotate.prompts import OraclePrompts
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.annotate.samqa.sam2_recovery import samqa_with_sam2_recovery
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.models.sam2.build import build_sam2_model
from samqa_framework.models.sam2.image_predictor import Sam2PointPredictor
from samqa_framework.utils.errors import ConfigError
from tests.annotate.helpers import GtMaskPredictor
from tests.annotate.samqa.test_annotator import QA
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE, write_random_sam2_checkpoint


def test_samqa_recovers_with_sam2(tiny_rats: Path, tmp_path: Path) -> None:
    checkpoint = write_random_sam2_checkpoint(tmp_path / "sam2_random.pt", SAM2_TEST_SIZE)
    image_model = build_sam2_model(SAM2_CONFIG, checkpoint, image_size=SAM2_TEST_SIZE)
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
    annotator = samqa_with_sam2_recovery(image_model, predictor=GtMaskPredictor(seq, {3: "merge"}),
                                         prompts=OraclePrompts(), qa=QA)
    assert isinstance(annotator, SamQaAnnotator) and annotator.name == "samqa+sam2"
    recovery = annotator.recovery_predictor
    assert isinstance(recovery, Sam2PointPredictor) and recovery.model is image_model
    result = annotate_sequence(annotator, seq, tmp_path / "labels", {}, max_frames=4, progress=False)
    records = list(LabelStore(tmp_path / "labels", {}).records())
    assert [r.recoveries for r in records[:3]] == [0, 0, 1]  # frame 3's merged masks were recovered ...
    assert result.counts["recoveries"] >= 1 and recovery.encoder_calls >= 1  # ... by SAM 2
    with pytest.raises(ConfigError, match=r"'recovery_predictor': must be null"):
        samqa_with_sam2_recovery(image_model, recovery_predictor=recovery, predictor=recovery,
                                 prompts=OraclePrompts(), qa=QA)
