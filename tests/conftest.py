from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from samqa_framework.api import compose
from samqa_framework.utils.hydra import CONFIG_DIR
from samqa_framework.utils.offline import configure_offline

configure_offline()
os.environ.setdefault("WANDB_DIR", "/tmp")
# The tests' models are tiny: a second thread gains little, and OpenMP threads spinning on a CPU shared with
# other jobs made model tests 5-15x slower. (Subprocess CLI tests set OMP_NUM_THREADS themselves.)
torch.set_num_threads(1)

SHARED_DATA = CONFIG_DIR.parent.parent / "shared" / "data"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notebook's situation: its own working folder, runs under <SAMQA_ROOT>/outputs."""
    monkeypatch.setenv("SAMQA_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a primary config as its app would (``api.compose``, the Hydra node kept), with the run's folder
    ``tmp_path/run`` unless the overrides set ``hydra.run.dir``, and decoded frames cached under ``tmp_path`` (not in
    the checkout's data folder) unless they set ``paths.frame_cache_dir``."""

    def _compose(config_name: str, overrides: list[str] | None = None) -> DictConfig:
        return compose(config_name, [f"hydra.run.dir={tmp_path}/run", f"paths.frame_cache_dir={tmp_path}/frame_cache",
                                     *(overrides or [])], return_hydra_config=True)

    return _compose


@pytest.fixture(scope="session")
def sleap_clip() -> Path:
    path = SHARED_DATA / "sleap_clip"
    if not (path / "clip.slp").is_file():
        pytest.skip(f"real data not found at {path}")
    return path


def build_tiny(root: Path, data: str = "synthetic_rats") -> Path:
    """A tiny synthetic data set (160x120, 40 training and 2x20 evaluation frames) in ``root``."""
    cfg = compose("generate", [f"data={data}", "data.size=tiny"], output_dir=root.parent)
    instantiate(cfg.data, _convert_="all").build(root)
    return root


def boxes_only(source: Path, out: Path, frames: Callable[[int], bool] | None = None) -> Path:
    """A copy of the data set ``source`` whose labels are boxes only, as a box import gives them: no
    ``gt/masks.jsonl`` (no build record either: not a synthetic set any more); with ``frames`` (1-based frame ->
    keep?) only those frames keep their ``gt/gt.txt`` rows (a few labelled frames, the others unlabelled)."""
    import shutil

    from samqa_framework.data.mot import read_mot, write_mot

    shutil.copytree(source, out)
    for seq in sorted(p.parent.parent for p in out.glob("*/gt/gt.txt")):
        (seq / "gt" / "masks.jsonl").unlink(missing_ok=True)
        (seq / "build.json").unlink(missing_ok=True)
        if frames is not None:
            gt = read_mot(seq / "gt" / "gt.txt")
            write_mot(seq / "gt" / "gt.txt", gt.select(np.array([frames(int(f)) for f in gt.frame], dtype=bool)))
    return out


@pytest.fixture(scope="session")
def tiny_rats_boxes(tiny_rats: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_rats`` with boxes but no masks."""
    return boxes_only(tiny_rats, tmp_path_factory.mktemp("data") / "rats-boxes")


@pytest.fixture(scope="session")
def tiny_rats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("data") / "synthetic_rats-tiny")


@pytest.fixture(scope="session")
def tiny_mice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("data") / "synthetic_mice-tiny", "synthetic_mice")


@pytest.fixture
def own_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``own_log("samqa_framework.x", logging.INFO)``: ``caplog`` holding that logger's records whatever earlier tests
    in this process did to logging (an in-process app or library may reconfigure it and leave existing loggers
    detached)."""
    import logging

    attached: list[logging.Logger] = []

    def attach(name: str, level: int = logging.INFO) -> pytest.LogCaptureFixture:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "propagate", False)  # the handler below gets each record once
        caplog.set_level(level, logger=name)
        logger.addHandler(caplog.handler)
        attached.append(logger)
        return caplog

    yield attach
    for logger in attached:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def trust_log(own_log: Callable[..., Any]) -> pytest.LogCaptureFixture:
    """``caplog`` holding ``utils.trust``'s warnings."""
    import logging

    return own_log("samqa_framework.utils.trust", logging.WARNING)
