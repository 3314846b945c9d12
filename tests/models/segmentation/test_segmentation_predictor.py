from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from samqa_framework.models.segmentation.checkpoint import export_segmentation, load_segmentation_state, net_config
from samqa_framework.models.segmentation.inputs import IMAGENET_MEAN, IMAGENET_STD, check_input_size
from samqa_framework.models.segmentation.predictor import SegmentationPredictor
from samqa_framework.utils.errors import TRUST_KEY, ConfigError, DataFormatError, UntrustedFileError
from samqa_framework.utils.trust import trusting
from tests.utils.helpers_untrusted import write_malicious_checkpoint

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
    with pytest.raises(ConfigError, match=r"'checkpoint'.*not found: .*nope\.pt"):
        SegmentationPredictor.load(tmp_path / "nope.pt", model=UNET, image_size=64)
    with pytest.raises(ConfigError, match=r"'checkpoint'.*not set"):
        SegmentationPredictor.load(None)
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="records no model config"):
        SegmentationPredictor.load(tmp_path / "other.pt")
    with pytest.raises(DataFormatError, match=r"other\.pt: does not match Unet: \d+ missing keys .*2 unexpected keys"):
        SegmentationPredictor.load(tmp_path / "other.pt", model=UNET, image_size=64)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFormatError, match=r"junk\.pt"):
        load_segmentation_state(nn.Linear(2, 2), tmp_path / "junk.pt")


def test_input_size_checks_name_the_key() -> None:
    deeplab = instantiate({**UNET, "_target_": "segmentation_models_pytorch.DeepLabV3", "encoder_depth": 5,
                           "decoder_channels": 32})
    check_input_size(deeplab, (64, 96), "stage.image_size")
    with pytest.raises(ConfigError, match=r"stage\.image_size.*multiples of 8"):
        check_input_size(deeplab, (60, 96), "stage.image_size")


def writes_file(marker: Path) -> dict:
    """A config node that, instantiated by Hydra, creates ``marker`` (any callable could be named instead)."""
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


@pytest.mark.parametrize("case,where", [
    ("nested", r"meta\.model\.aux_params holds a config node"),
    ("in_a_list", r"meta\.model\.decoder_channels holds a config node"),
    ("top_level", r"meta\.model\._target_ 'builtins\.open' is none of our model configs"),
    ("hydra_key", r"meta\.model\._args_ is"),
    ("interpolation", r"meta\.model\.encoder_name holds a config node or an interpolation"),
])
def test_a_sidecar_that_names_classes_is_refused(tmp_path: Path, case: str, where: str) -> None:
    """The sidecar is data: the net comes from our model configs, so a class it names never runs."""
    marker = tmp_path / "MARKER"
    torch.manual_seed(0)
    path = export_segmentation(instantiate(UNET), tmp_path / "seg.pt", (64, 64), meta={"model": UNET})
    side = tmp_path / "seg.pt.json"
    info = json.loads(side.read_text())
    info["meta"]["model"] = {
        "nested": {**UNET, "aux_params": writes_file(marker)},
        "in_a_list": {**UNET, "decoder_channels": [writes_file(marker), 16, 8]},
        "top_level": writes_file(marker),
        "hydra_key": {**UNET, "_args_": [writes_file(marker)]},
        "interpolation": {**UNET, "encoder_name": "${oc.env:HOME}"},
    }[case]
    side.write_text(json.dumps(info))
    for model in (None, UNET):  # the sidecar's config, or ours given: either way the file is refused
        if case == "top_level" and model is not None:
            where = r"meta\.model\._target_ is 'builtins\.open' where our model config has"
        with pytest.raises(UntrustedFileError, match=rf"seg\.pt\.json: {where}.*{TRUST_KEY}=true"):
            SegmentationPredictor.load(path, model=model)
    assert not marker.exists()
    with trusting(True):  # trusted: the sidecar's config as it is (what the predictor then instantiates)
        assert net_config(path) == info["meta"]["model"]


def test_an_export_with_plain_values_of_our_net_loads(tmp_path: Path) -> None:
    """Values the sidecar records (the encoder, the depth it was trained with) are data: they are used."""
    torch.manual_seed(0)
    config = {**UNET, "encoder_depth": 4, "decoder_channels": [32, 16, 8, 8]}
    path = export_segmentation(instantiate(config), tmp_path / "seg.pt", (64, 64), meta={"model": config})
    ours = {"_target_": "segmentation_models_pytorch.Unet", "encoder_name": "resnet18", "encoder_weights": None,
            "in_channels": 3, "classes": 2}  # conf/model/unet.yaml
    assert net_config(path) == net_config(path, ours) == {**ours, **config}
    assert SegmentationPredictor.load(path, model=ours).size == (64, 64)


def test_a_state_dict_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = write_malicious_checkpoint(tmp_path / "seg.pt", marker, payload=nn.Linear(2, 2).state_dict())
    with pytest.raises(UntrustedFileError, match=rf"seg\.pt: .*{TRUST_KEY}=true"):
        load_segmentation_state(nn.Linear(2, 2), evil)
    assert not marker.exists()
