from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.checkpoints import export_sam_state_dict
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR


def _model_cfg(encoder: str, image_size: int, **overrides):
    sam = OmegaConf.load(Path(CONFIG_DIR) / "model" / "sam.yaml")
    sam.pop("defaults")
    sam.encoder = OmegaConf.load(Path(CONFIG_DIR) / "model" / "encoder" / f"{encoder}.yaml")
    sam.image_size = image_size
    for key, value in overrides.items():
        sam[key] = value
    cfg = OmegaConf.create({"model": sam})
    return cfg.model


def test_model_config_instantiates_a_sam_around_the_encoder() -> None:
    sam = instantiate(_model_cfg("tiny_vit_5m", 64))
    assert isinstance(sam.image_encoder, TimmEncoder) and sam.image_encoder.img_size == 64
    assert sam.prompt_encoder.image_embedding_size == (4, 4)
    assert sam.prompt_encoder.input_image_size == (64, 64)


def test_prompt_encoder_and_decoder_shapes_do_not_depend_on_image_size() -> None:
    small = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)).state_dict()
    large = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=256)).state_dict()
    parts = [k for k in small if not k.startswith("image_encoder.")]
    assert parts and all(small[k].shape == large[k].shape for k in parts)


def test_sam_forward_with_a_box_gives_masks_at_input_size() -> None:
    torch.manual_seed(0)
    sam = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)).eval()
    image = torch.randint(0, 255, (3, 48, 64), dtype=torch.float32)
    with torch.inference_mode():
        out = sam([{"image": image, "original_size": (48, 64), "boxes": torch.tensor([[4.0, 4.0, 40.0, 30.0]])}],
                  multimask_output=False)
    assert out[0]["masks"].shape == (1, 1, 48, 64)
    assert out[0]["iou_predictions"].shape == (1, 1)


def test_image_size_differing_from_encoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64), image_size=128)
    assert err.value.key == "image_size"  # the argument; under a config: model.image_size


def test_builder_loads_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64))
    with torch.no_grad():
        src.image_encoder.neck[1].weight.normal_()
        src.mask_decoder.iou_token.weight.normal_()
    path = export_sam_state_dict(src, tmp_path / "student.pth")
    dst = instantiate(_model_cfg("tiny_vit_5m", 64, checkpoint=str(path)))
    assert torch.equal(dst.image_encoder.neck[1].weight, src.image_encoder.neck[1].weight)
    assert torch.equal(dst.mask_decoder.iou_token.weight, src.mask_decoder.iou_token.weight)


def test_builder_missing_checkpoint_names_the_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64), checkpoint=tmp_path / "missing.pth")
    assert err.value.key == "checkpoint"
