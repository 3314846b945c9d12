"""A tiny synthetic rat data set (160x120, 40 training and 2x20 evaluation frames), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from samqa_framework.utils.hydra import CONFIG_DIR


def build_tiny(root: Path, data: str = "synthetic_rats") -> Path:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=[f"data={data}", "data.size=tiny"])
    GlobalHydra.instance().clear()
    instantiate(cfg.data, _convert_="all").build(root)
    return root


@pytest.fixture(scope="session")
def tiny_rats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("data") / "synthetic_rats-tiny")
