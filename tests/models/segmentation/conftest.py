"""Fixtures of the segmentation baselines: a tiny random-weight DINOv2 folder, a tiny synthetic rat data set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from transformers import Dinov2Config, Dinov2Model

from samqa_framework.utils.hydra import CONFIG_DIR


def write_dinov2(folder: Path, patch_size: int = 8, image_size: int = 64, seed: int = 0) -> Path:
    """A Hugging Face DINOv2 folder (config.json + model.safetensors) with tiny random weights."""
    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=patch_size, image_size=image_size)
    Dinov2Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dinov2(tmp_path_factory.mktemp("hf") / "dinov2-tiny")


@pytest.fixture(scope="session")
def seg_rats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic rats (160x120; 40 training, 2x20 evaluation frames), built once per session."""
    root = tmp_path_factory.mktemp("data") / "synthetic_rats-tiny"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=["data=synthetic_rats", "data.size=tiny"])
    GlobalHydra.instance().clear()
    instantiate(cfg.data, _convert_="all").build(root)
    return root
