"""SAM-QA whose automatic recovery prompts SAM 2's image predictor (``annotator=samqa_sam2``)."""

from __future__ import annotations

from typing import Any

from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.models.sam2.image_predictor import Sam2PointPredictor
from samqa_framework.utils.errors import ConfigError


def samqa_with_sam2_recovery(sam2: Any, recovery_predictor: Any = None, multimask: bool = False,
                             **samqa: Any) -> SamQaAnnotator:
    """SAM-QA (:class:`~samqa_framework.annotate.samqa.annotator.SamQaAnnotator`, its arguments in ``samqa``)
    whose grid-point recovery prompts SAM 2's image predictor: ``sam2`` from ``build_sam2_model(..., video=False)``;
    ``multimask``: the best of SAM 2's three proposals per recovery prompt.
    (A factory, so that the SAM 2 settings can sit beside SAM-QA's own arguments in one config node.)"""
    if recovery_predictor is not None:
        raise ConfigError("recovery_predictor", "must be null: this SAM-QA recovers with the SAM 2 of `sam2`")
    annotator = SamQaAnnotator(recovery_predictor=Sam2PointPredictor(sam2, multimask=multimask), **samqa)
    annotator.name = f"{annotator.name}+sam2"
    return annotator
