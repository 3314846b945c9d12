from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import ViTConfig, ViTModel

from samqa_framework.models.segmentation.dinov2_linear import Dinov2LinearHead
from samqa_framework.utils.errors import ConfigError


def test_loads_frozen_backbone_and_gives_input_sized_logits(tiny_dinov2: Path) -> None:
    net = Dinov2LinearHead(str(tiny_dinov2), classes=2, image_size=64)
    assert net.patch_size == 8
    assert all(not p.requires_grad for p in net.backbone.parameters())
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    net.train()
    assert net.training and not net.backbone.training  # frozen: stays in eval mode
    x = torch.randn(2, 3, 64, 48)
    logits = net(x)
    assert logits.shape == (2, 2, 64, 48)
    logits.sum().backward()
    assert net.head.weight.grad is not None
    assert all(p.grad is None for p in net.backbone.parameters())
    # the features are the backbone's patch tokens on an (H/8, W/8) grid
    with torch.no_grad():
        tokens = net.backbone(pixel_values=x).last_hidden_state
    assert torch.allclose(net.features(x)[1, :, 2, 3], tokens[1, 1 + 2 * 6 + 3])


def test_loading_twice_gives_the_same_backbone(tiny_dinov2: Path) -> None:
    a, b = Dinov2LinearHead(tiny_dinov2), Dinov2LinearHead(tiny_dinov2)
    assert all(torch.equal(v, b.backbone.state_dict()[k]) for k, v in a.backbone.state_dict().items())


def test_bad_backbone_folders_name_the_key_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'backbone_path'.*not set"):  # under a config: model.backbone_path
        Dinov2LinearHead(None)
    with pytest.raises(ConfigError, match=r"'backbone_path'.*not found: .*nowhere"):
        Dinov2LinearHead(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        Dinov2LinearHead(tmp_path / "empty")
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    with pytest.raises(ConfigError, match=r"vit.*'vit' model, not DINOv2"):
        Dinov2LinearHead(tmp_path / "vit")


def test_input_size_must_be_a_multiple_of_the_patch(tiny_dinov2: Path) -> None:
    with pytest.raises(ConfigError, match=r"'image_size'.*60.*patch size 8"):
        Dinov2LinearHead(tiny_dinov2, image_size=60)
    net = Dinov2LinearHead(tiny_dinov2)
    with pytest.raises(ValueError, match="multiple of DINOv2's patch size 8"):
        net(torch.zeros(1, 3, 60, 64))
