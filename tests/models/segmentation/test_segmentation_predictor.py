from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from samqa_framework.models.segmentation.checkpoint import export_segmentation, load_segmentation_state
from samqa_framework.models.segmentation.inputs import IMAGENET_MEAN, IMAGENET_STD, check_input_size
from samqa_framework.models.segmentation.predictor import SegmentationPredictor
from samqa_framework.utils.errors import ConfigError, DataFormatError

UNET = {"_target_": "segmentation_models_pytorch.Unet", "encoder_name": "resnet18", "encoder_weights": None,
        "encoder_depth": 3, "decoder_channels": [32, 16, 8], "in_channels": 3, "classes": 2}


class RedIsAnimal(nn.Module):
    """Background logit 0, animal logit = the (normalised) red channel x 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), 2 * x[:, :1]], dim=1)


def test_heatmap_is_the_logit_difference_at_the_frames_resolution() -> None:
    frame = np.zeros((30, 50, 3), np.uint8)
    frame[:, :25, 2] = 255  # red (BGR) on the left half
    frame[:, 25:, 0] = 255  # blue on the right half
    heat = SegmentationPredictor(RedIsAnimal(), image_size=[16, 32]).heatmap(frame)
    assert heat.shape == (30, 50) and heat.dtype == np.float32
    red = 2 * (255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    blue = 2 * (0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert np.allclose(heat[:, :20], red, atol=1e-4) and np.allclose(heat[:, 30:], blue, atol=1e-4)
    assert (heat[:, :24] > 0).all() and (heat[:, 26:] < 0).all()  # left half is "animal"
    both = SegmentationPredictor(RedIsAnimal(), image_size=16).heatmaps([frame, frame[:20]])
    assert [h.shape for h in both] == [(30, 50), (20, 50)]
    with pytest.raises(ValueError, match="uint8 BGR"):
        SegmentationPredictor(RedIsAnimal(), 16).heatmap(frame.astype(np.float32))


def test_export_then_load_rebuilds_the_same_net(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = instantiate(UNET)
    path = export_segmentation(net, tmp_path / "seg.pt", (64, 96), meta={"model": UNET, "stage": "segmentation"})
    side = json.loads((tmp_path / "seg.pt.json").read_text())
    assert side["format"] == "samqa-segmentation" and side["image_size"] == [64, 96]
    loaded = SegmentationPredictor.load(path)  # model config and size from the sidecar
    assert loaded.size == (64, 96)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.net.state_dict().items())
    frame = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    reference = SegmentationPredictor(net, (64, 96)).heatmap(frame)
    assert np.array_equal(loaded.heatmap(frame), reference)
    explicit = SegmentationPredictor.load(path, model=UNET, image_size=64)
    assert explicit.size == (64, 64)


def test_missing_or_mismatched_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"annotator\.checkpoint.*not found: .*nope\.pt"):
        SegmentationPredictor.load(tmp_path / "nope.pt", model=UNET, image_size=64)
    with pytest.raises(ConfigError, match=r"annotator\.seg_weights.*not set"):
        SegmentationPredictor.load(None, key="annotator.seg_weights")
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="records no model config"):
        SegmentationPredictor.load(tmp_path / "other.pt")
    with pytest.raises(DataFormatError, match=r"other\.pt: does not match Unet: \d+ missing keys .*2 unexpected keys"):
        SegmentationPredictor.load(tmp_path / "other.pt", model=UNET, image_size=64)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match=r"junk\.pt"):
        load_segmentation_state(nn.Linear(2, 2), tmp_path / "junk.pt", "k")


def test_input_size_checks_name_the_key() -> None:
    deeplab = instantiate({**UNET, "_target_": "segmentation_models_pytorch.DeepLabV3", "encoder_depth": 5,
                           "decoder_channels": 32})
    check_input_size(deeplab, (64, 96), "stage.image_size")
    with pytest.raises(ConfigError, match=r"stage\.image_size.*multiples of 8"):
        check_input_size(deeplab, (60, 96), "stage.image_size")
