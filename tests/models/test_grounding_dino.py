from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from samqa_framework.models.grounding_dino import GroundingDinoDetector, normalize_prompt
from samqa_framework.utils.errors import ConfigError
from tests.models.helpers_checkpoints import TINY_VOCAB, write_hf_folder_of_other_type, write_tiny_grounding_dino

H, W = 48, 72



@pytest.fixture(scope="module")
def gdino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_grounding_dino(tmp_path_factory.mktemp("gdino") / "grounding-dino-tiny-random")


@pytest.fixture(scope="module")
def detector(gdino_dir: Path) -> GroundingDinoDetector:
    return GroundingDinoDetector(str(gdino_dir))


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_tokenizer_keeps_berts_delimiter_ids(detector) -> None:
    ids = detector.processor.tokenizer("rat. mouse.")["input_ids"]
    assert ids == [101, TINY_VOCAB["rat"], 1012, TINY_VOCAB["mouse"], 1012, 102]


def test_k_best_boxes_inside_the_frame(detector) -> None:
    boxes, scores = detector.detect(_frame(), "rat", k=3)
    assert boxes.shape == (3, 4) and boxes.dtype == np.float32
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert np.all(np.diff(scores) <= 0)  # best first
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= W) and np.all(boxes[:, 1] >= 0)
    assert np.all(boxes[:, 3] <= H) and np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    more, more_scores = detector.detect(_frame(), "rat.", k=5)  # the period is added when missing
    np.testing.assert_array_equal(more[:3], boxes)
    np.testing.assert_array_equal(more_scores[:3], scores)
    assert detector.detect(_frame(), "rat", k=0)[0].shape == (0, 4)


def test_scores_are_the_queries_best_token_probabilities(detector) -> None:
    """Recompute from the raw outputs: score = max sigmoid over the prompt's tokens, box = cxcywh in frame pixels."""
    frame = _frame(1)
    boxes, scores = detector.detect(frame, "mouse", k=50)  # more than the 12 queries: all that fit the frame
    inputs = detector.processor(images=np.ascontiguousarray(frame[:, :, ::-1]), text="mouse.", return_tensors="pt")
    with torch.inference_mode():
        out = detector.model(**inputs)
    best = out.logits[0].sigmoid().max(dim=-1).values
    cx, cy, w, h = out.pred_boxes[0].unbind(-1)
    ref = torch.stack([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H], -1)
    ref[:, 0::2] = ref[:, 0::2].clamp(0, W)
    ref[:, 1::2] = ref[:, 1::2].clamp(0, H)
    valid = (ref[:, 2] > ref[:, 0]) & (ref[:, 3] > ref[:, 1])
    order = torch.argsort(best[valid], descending=True, stable=True)
    assert len(boxes) == int(valid.sum()) <= 12
    np.testing.assert_allclose(scores, best[valid][order].numpy(), rtol=1e-5)
    np.testing.assert_allclose(boxes, ref[valid][order].numpy(), rtol=1e-4, atol=1e-3)


def test_threshold_and_nms(gdino_dir: Path) -> None:
    frame = _frame(2)
    _, all_scores = GroundingDinoDetector(gdino_dir).detect(frame, "rat", k=50)
    cut = float(np.median(all_scores))
    boxes, scores = GroundingDinoDetector(gdino_dir, box_threshold=cut).detect(frame, "rat", k=50)
    assert len(boxes) == int((all_scores > cut).sum()) and np.all(scores > cut)
    nms_boxes, _ = GroundingDinoDetector(gdino_dir, nms_iou=0.0).detect(frame, "rat", k=50)
    # IoU threshold 0: no two kept boxes overlap at all
    for i in range(len(nms_boxes)):
        for j in range(i + 1, len(nms_boxes)):
            a, b = nms_boxes[i], nms_boxes[j]
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])


def test_folder_in_the_transformers_4_hub_layout_loads(gdino_dir: Path, tmp_path: Path) -> None:
    """Released folders (e.g. IDEA-Research/grounding-dino-tiny) were saved by transformers 4: legacy config keys and
    a preprocessor_config.json naming the processor class instead of processor_config.json."""
    from transformers import GroundingDinoImageProcessor

    folder = Path(shutil.copytree(gdino_dir, tmp_path / "hub"))
    config = json.loads((folder / "config.json").read_text())
    config |= {"backbone": None, "backbone_kwargs": None, "use_pretrained_backbone": False, "use_timm_backbone": False}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "processor_config.json").unlink()
    GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(folder)
    pre = json.loads((folder / "preprocessor_config.json").read_text()) | {"processor_class": "GroundingDinoProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    boxes, scores = GroundingDinoDetector(folder).detect(_frame(), "rat", k=3)
    ref_boxes, ref_scores = GroundingDinoDetector(gdino_dir).detect(_frame(), "rat", k=3)
    np.testing.assert_array_equal(boxes, ref_boxes)
    np.testing.assert_array_equal(scores, ref_scores)


def test_prompt_normalisation() -> None:
    assert normalize_prompt("  A  Rat ") == "a rat."
    assert normalize_prompt("rat. mouse.") == "rat. mouse."
    with pytest.raises(ValueError, match="empty"):
        normalize_prompt("  ")


def test_missing_or_wrong_folder_names_key_folder_and_type(tmp_path: Path) -> None:
    missing = tmp_path / "grounding-dino-tiny"
    with pytest.raises(ConfigError, match="not found") as err:
        GroundingDinoDetector(str(missing))
    assert err.value.key == "model_dir" and str(missing) in str(err.value)
    bert = write_hf_folder_of_other_type(tmp_path / "bert")
    with pytest.raises(ConfigError, match=r"'bert' model, not Grounding DINO") as err:
        GroundingDinoDetector(str(bert))
    assert err.value.key == "model_dir" and str(bert) in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        GroundingDinoDetector(str(tmp_path / "empty"))
