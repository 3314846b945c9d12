from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sam2.sam2_image_predictor import SAM2ImagePredictor

from samqa_framework.models.sam2.build import build_sam2_model
from samqa_framework.models.sam2.image_predictor import Sam2PointPredictor, backbone_feature_sizes
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE
from tests.models.helpers_predictors import H, W, counted_predictor, random_frame


@pytest.fixture(scope="module")
def model(sam2_checkpoint: Path):
    return build_sam2_model(SAM2_CONFIG, sam2_checkpoint, image_size=SAM2_TEST_SIZE)


@pytest.fixture
def counted(model):
    yield from counted_predictor(Sam2PointPredictor, model)


# sam2's own predictor, used as the reference below, scripts its transforms with deprecated torch.jit.script
SAM2_JIT_WARNING = "ignore:`torch.jit.script` is deprecated:FutureWarning"

BOXES = np.array([[2, 3, 30, 40], [40, 10, 79, 47], [0, 0, 80, 48], [10, 10, 20, 20]], np.float32)


def test_feature_sizes_follow_the_model_size(model) -> None:
    assert backbone_feature_sizes(1024) == [(256, 256), (128, 128), (64, 64)]  # sam2's hard-coded values
    predictor = Sam2PointPredictor(model)
    predictor.set_frame(random_frame())
    feats = predictor._predictor._features
    got = [tuple(f.shape[-2:]) for f in (*feats["high_res_feats"], feats["image_embed"])]
    assert got == backbone_feature_sizes(SAM2_TEST_SIZE)


def test_shapes_and_one_encoder_pass_perrandom_frame(counted) -> None:
    predictor, seen = counted
    frame = random_frame()
    masks, scores = predictor.predict_points(frame, np.array([[[10, 10], [20, 30]], [[60, 30], [70, 40]]]),
                                             np.array([[1, 0], [1, 1]]))
    assert len(seen) == 1 and predictor.encoder_calls == 1
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert scores.shape == (2,) and scores.dtype == np.float32
    assert predictor.frame_size == (H, W)
    masks, scores = predictor.predict_boxes(frame, BOXES)
    assert masks.shape == (4, H, W) and scores.shape == (4,)
    predictor.predict_points(frame.copy(), np.array([[15, 15]]))  # (K, 2), same pixels in another buffer
    empty_masks, empty_scores = predictor.predict_boxes(frame, np.zeros((0, 4)))
    assert empty_masks.shape == (0, H, W) and empty_scores.shape == (0,)
    assert len(seen) == 1 and predictor.encoder_calls == 1
    frame[0, 0, 0] ^= 1  # a video reader overwriting its buffer in place: a new frame
    predictor.predict_boxes(frame, BOXES[:1])
    assert len(seen) == 2
    predictor.predict_boxes(frame, BOXES[:1], bgr=False)  # other colour order: other encoder input
    assert len(seen) == 3
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        predictor.predict_boxes(frame, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="labels"):
        predictor.predict_points(frame, np.zeros((2, 3, 2)), np.ones((2, 2)))


@pytest.mark.filterwarnings(SAM2_JIT_WARNING)
def test_masks_match_sam2s_own_predictor(model) -> None:
    frame = random_frame(2)
    ours = Sam2PointPredictor(model)
    masks, scores = ours.predict_boxes(frame, BOXES)
    pmasks, pscores = ours.predict_points(frame, np.array([[[20, 20]], [[60, 30]]]))
    ref = SAM2ImagePredictor(model)
    ref._bb_feat_sizes = backbone_feature_sizes(SAM2_TEST_SIZE)
    ref.set_image(np.ascontiguousarray(frame[:, :, ::-1]))  # ours reads BGR, sam2 wants RGB
    for i, box in enumerate(BOXES):
        ref_masks, ref_scores, _ = ref.predict(box=box, multimask_output=False)
        assert np.array_equal(masks[i], ref_masks[0] > 0)
        assert scores[i] == pytest.approx(float(ref_scores[0]), abs=1e-5)
    for i, point in enumerate(([20, 20], [60, 30])):
        ref_masks, ref_scores, _ = ref.predict(point_coords=np.array([point]), point_labels=np.array([1]),
                                               multimask_output=False)
        assert np.array_equal(pmasks[i], ref_masks[0] > 0)
        assert pscores[i] == pytest.approx(float(ref_scores[0]), abs=1e-5)


@pytest.mark.filterwarnings(SAM2_JIT_WARNING)
def test_multimask_keeps_the_best_scoring_mask(model) -> None:
    frame = random_frame(3)
    masks, scores = Sam2PointPredictor(model, multimask=True).predict_points(frame, np.array([[[20, 20]]]))
    ref = SAM2ImagePredictor(model)
    ref._bb_feat_sizes = backbone_feature_sizes(SAM2_TEST_SIZE)
    ref.set_image(np.ascontiguousarray(frame[:, :, ::-1]))
    ref_masks, ref_scores, _ = ref.predict(point_coords=np.array([[20, 20]]), point_labels=np.array([1]),
                                           multimask_output=True)
    assert ref_masks.shape[0] == 3
    assert scores[0] == pytest.approx(float(ref_scores.max()), abs=1e-5)
    assert np.array_equal(masks[0], ref_masks[int(np.argmax(ref_scores))] > 0)
