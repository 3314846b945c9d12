from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from samqa_framework.models.sam.encoders import SamViTEncoder, TimmEncoder
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR

ENCODER_CONFIGS = sorted((Path(CONFIG_DIR) / "model" / "encoder").glob("*.yaml"))
BIG = {"vit_l", "vit_h"}  # hundreds of millions of weights: built on the meta device, shapes only


def test_every_encoder_config_is_covered() -> None:
    assert {p.stem for p in ENCODER_CONFIGS} >= {"tiny_vit_5m", "tiny_vit_11m", "tiny_vit_21m", "vit_b", "vit_l",
                                                 "vit_h", "timm"}


@pytest.mark.parametrize("config", ENCODER_CONFIGS, ids=lambda p: p.stem)
def test_encoder_config_gives_stride_16_embedding(config: Path) -> None:
    cfg = OmegaConf.load(config)
    cfg.img_size = 64
    if config.stem in BIG:
        with torch.device("meta"):
            encoder = instantiate(cfg)
            out = encoder(torch.empty(2, 3, 64, 64))
    else:
        torch.manual_seed(0)
        encoder = instantiate(cfg).eval()
        with torch.inference_mode():
            out = encoder(torch.randn(2, 3, 64, 64))
        assert torch.isfinite(out).all()
    assert encoder.img_size == 64
    assert tuple(out.shape) == (2, 256, 4, 4)


@pytest.mark.parametrize("encoder", [lambda: TimmEncoder("tiny_vit_5m_224", 128), lambda: SamViTEncoder("vit_b", 128)],
                         ids=["tiny_vit_5m", "vit_b"])
def test_encoder_at_128(encoder) -> None:
    model = encoder().eval()
    with torch.inference_mode():
        assert tuple(model(torch.randn(1, 3, 128, 128)).shape) == (1, 256, 8, 8)


@pytest.mark.parametrize(("name", "channels"), [("tiny_vit_5m_224", 320), ("tiny_vit_11m_224", 448),
                                                ("tiny_vit_21m_224", 576)])
def test_tiny_vit_is_built_like_mobile_sam(name: str, channels: int) -> None:
    encoder = TimmEncoder(name, img_size=64)
    assert encoder.trunk["stages"][-1].downsample.conv2.conv.stride == (1, 1)
    assert encoder.trunk["stages"][-2].downsample.conv2.conv.stride == (2, 2)
    assert encoder.neck[0].in_channels == channels
    assert not any(k.startswith("trunk.head") for k in encoder.state_dict())


@pytest.mark.parametrize("size", [100, 48, 63.5])
@pytest.mark.parametrize("cls", [TimmEncoder, SamViTEncoder])
def test_bad_image_size_names_img_size(cls, size) -> None:
    with pytest.raises(ConfigError) as err:
        cls(img_size=size)
    assert err.value.key == "img_size" and "multiple of 16" in str(err.value)  # under a config: model.image_size


def test_unknown_timm_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        TimmEncoder("no_such_net_9000", img_size=64)
    assert err.value.key == "model_name" and "no_such_net_9000" in str(err.value)


def test_unknown_vit_variant_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        SamViTEncoder("vit_x", img_size=64)
    assert err.value.key == "variant"


def test_fuse_for_inference_keeps_the_output_and_removes_batchnorm() -> None:
    torch.manual_seed(0)
    encoder = TimmEncoder("tiny_vit_5m_224", img_size=64).eval()
    for module in encoder.modules():  # non-trivial statistics, so a wrong fold would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        before = encoder(x)
        after = encoder.fuse_for_inference()(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())
    assert encoder.channels_last
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
