"""The fault suite's world: a tiny data set, predictions and a finished label run, made once per session and
copied into each case's folder (a case may damage its copy); helpers to run a task as its app does and to
snapshot a folder tree."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from samqa_framework import api
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.hydra import run_task
from samqa_framework.utils.locks import LOCK_FILE
from tests.conftest import build_tiny

# Every task's run lands in the case's run folder: its Hydra folder, outputs/ (paths.root_dir), W&B off.
TASK_DEFAULTS = {
    "generate": [],
    "evaluate": ["logger=csv"],
    "annotate": ["logger=csv", "progress=false"],
    "train": ["logger=csv"],
    "study": ["logger=csv", "progress=false", "experiment=study_smoke", "study.continue_on_error=false"],
    "export": [],
}


def compose_in(task: str, run_dir: Path, overrides: list[str]) -> DictConfig:
    """``task``'s config as its app composes it, everything it writes under ``run_dir``."""
    return api.compose(task, [f"paths.root_dir={run_dir}", *TASK_DEFAULTS[task], *overrides], output_dir=run_dir)


def run_as_app(task: str, cfg: DictConfig) -> object:
    """What ``samqa-<task>`` does with a composed config: bad input becomes one ``error: ...`` line on stderr and
    ``SystemExit`` with the error's exit status (``utils.hydra.run_task``)."""
    return run_task(lambda c: api.run(task, c))(cfg)


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every entry under ``root`` (but ``skip``): file -> content hash, link -> target, folder -> ``<dir>``, a folder
    lock's file (``utils.locks``) -> ``<lock>``."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            rel = str(path.relative_to(root))
            if skip is not None and path == skip:
                continue
            if path.is_symlink():
                out[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                out[rel] = "<dir>"
            elif name == LOCK_FILE:  # a lock file names its last holder: the lock itself, not data, so its existence
                out[rel] = "<lock>"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def fault_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/`` (the tiny synthetic rats), ``pred/`` (the evaluation sequences' ground truth as predictions) and
    ``labels/`` (a finished manual label run of the training video's first 10 frames)."""
    root = tmp_path_factory.mktemp("fault_world")
    data = build_tiny(root / "data")
    manifest = DatasetManifest.read(data)
    (root / "pred").mkdir()
    for seq in manifest.eval:
        shutil.copy(data / seq / "gt" / "gt.txt", root / "pred" / f"{seq}.txt")
    run = root / "_label_run"
    cfg = compose_in("annotate", run, ["annotator=manual", "max_frames=10", "data.size=tiny",
                                       f"paths.dataset_dir={data}", f"out_dir={root / 'labels'}"])
    api.run("annotate", cfg)
    shutil.rmtree(run)
    return root


@pytest.fixture
def case_dir(fault_world: Path, tmp_path: Path) -> Path:
    """A fresh copy of the world in ``<tmp>/in``; the run goes to ``<tmp>/run``."""
    shutil.copytree(fault_world, tmp_path / "in", symlinks=True)
    return tmp_path


Setup = Callable[[Path], list[str]]
