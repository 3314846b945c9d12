from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict, read_write

from samqa_framework.utils.hydra import CONFIG_DIR
from samqa_framework.utils.offline import configure_offline

configure_offline()
os.environ.setdefault("WANDB_DIR", "/tmp")
# The tests' models are tiny: a second thread gains little, and OpenMP threads spinning on a CPU shared with
# other jobs made model tests 5-15x slower. (Subprocess CLI tests set OMP_NUM_THREADS themselves.)
torch.set_num_threads(1)

SHARED_DATA = CONFIG_DIR.parent.parent / "shared" / "data"


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose a primary config as its app would, with runs writing under ``tmp_path``."""

    def _compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name, overrides=[f"hydra.run.dir={tmp_path}/run", *(overrides or [])],
                          return_hydra_config=True)
        # What Hydra sets when it starts a job, so that ${hydra:...} resolves as in a real run.
        run_dir = Path(cfg.hydra.run.dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def sleap_clip() -> Path:
    path = SHARED_DATA / "sleap_clip"
    if not (path / "clip.slp").is_file():
        pytest.skip(f"real data not found at {path}")
    return path


def build_tiny(root: Path, data: str = "synthetic_rats") -> Path:
    """A tiny synthetic data set (160x120, 40 training and 2x20 evaluation frames) in ``root``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=[f"data={data}", "data.size=tiny"])
    GlobalHydra.instance().clear()
    instantiate(cfg.data, _convert_="all").build(root)
    return root


@pytest.fixture(scope="session")
def tiny_rats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("data") / "synthetic_rats-tiny")


@pytest.fixture(scope="session")
def tiny_mice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("data") / "synthetic_mice-tiny", "synthetic_mice")
