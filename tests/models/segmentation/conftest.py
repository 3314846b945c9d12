"""Fixtures of the segmentation baselines: a tiny random-weight DINOv2 folder, a tiny synthetic rat data set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Dinov2Config, Dinov2Model


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
