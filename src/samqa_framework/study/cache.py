"""Stage results cached by the configuration that produced them.

Each stage of a study job runs in ``<root>/<stage>/<key>/``, where ``key`` hashes the stage's spec (the resolved
config values that decide its output, and the keys of the stages it reads) and the code that runs it (this
package's source and the versions of the libraries that train and predict): after a code change or an upgrade
nothing stale is reused. ``done.json`` is written atomically
last, so a folder without it is an unfinished stage: a re-run or a crashed multirun starts that stage again in the
same folder (annotation then resumes frame by frame from its own store). A file lock serialises two jobs that need
the same stage at once (e.g. a SLURM multirun whose methods share one trained model).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json
from samqa_framework.utils.locks import FolderLock, LockedError

log = logging.getLogger(__name__)

DONE = "done.json"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The libraries whose code produces a stage's output (training, prediction, evaluation): an upgrade re-runs stages.
CODE_DISTRIBUTIONS = ("torch", "torchvision", "lightning", "ultralytics", "segment-anything", "sam2", "timm",
                      "segmentation-models-pytorch", "transformers", "trackeval", "numpy", "opencv-python",
                      "scikit-image", "scikit-learn", "pycocotools")


def code_fingerprint(package_dir: str | os.PathLike[str] = PACKAGE_DIR,
                     distributions: Iterable[str] = CODE_DISTRIBUTIONS) -> str:
    """A hash of the Python source under ``package_dir`` (paths and contents) and the installed versions of
    ``distributions`` (absent ones count as such). Any edit of a module, comments included, changes it: a stage is
    re-run rather than risk reusing what older code produced."""
    h = hashlib.sha256()
    root = Path(package_dir)
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name in distributions:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{name}=={version}\n".encode())
    return h.hexdigest()[:16]


@functools.cache
def current_code() -> str:
    """This process's :func:`code_fingerprint` (computed once: about 0.1 s of reading)."""
    return code_fingerprint()


def spec_key(spec: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able spec (key order does not matter)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage_lock(stage_dir: Path, name: str) -> FolderLock:
    """The stage folder, locked while its stage runs. Another job that needs the same stage (a parallel multirun,
    a second study sharing the cache) waits, then finds the first one's result: it is told who it waits for."""
    try:
        return FolderLock(stage_dir, f"stage {name}").acquire()
    except LockedError as busy:
        log.info("%s; waiting", busy)
        return FolderLock(stage_dir, f"stage {name}", wait=True).acquire()


@dataclass
class StageResult:
    name: str
    key: str
    dir: Path
    outputs: dict[str, Any]
    wall_s: float      # the stage's own run time (the run that produced it, when cached)
    cached: bool


class StageCache:
    def __init__(self, root: str | os.PathLike[str], code: str | None = None) -> None:
        """``code``: the code's fingerprint, part of every key (default: :func:`current_code`)."""
        self.root = Path(root)
        self.code = current_code() if code is None else code

    def run(self, name: str, spec: Mapping[str, Any], fn: Callable[[Path], Mapping[str, Any]]) -> StageResult:
        """``fn(stage_dir) -> outputs`` (JSON-able) unless a finished run of the same spec and code exists."""
        spec = {**spec, "code": self.code}
        key = spec_key(spec)
        stage_dir = self.root / name / key
        stage_dir.mkdir(parents=True, exist_ok=True)
        with _stage_lock(stage_dir, name):
            done = stage_dir / DONE
            if done.is_file():
                try:
                    rec = json.loads(done.read_text(encoding="utf-8"))
                    outputs, wall = dict(rec["outputs"]), float(rec["wall_s"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataFormatError(done, f"a damaged stage record ({exc.__class__.__name__}: {exc}); delete "
                                          f"{stage_dir} to run the stage again") from None
                log.info("%s: cached (%s)", name, stage_dir)
                return StageResult(name, key, stage_dir, outputs, wall, True)
            atomic_write_json(stage_dir / "spec.json", dict(spec))
            start = time.perf_counter()
            outputs = dict(fn(stage_dir))
            wall = time.perf_counter() - start
            atomic_write_json(done, {"stage": name, "key": key, "outputs": outputs, "wall_s": round(wall, 2),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
            return StageResult(name, key, stage_dir, outputs, wall, False)
