"""Stage results cached by the configuration that produced them.

Each stage of a study job runs in ``<root>/<stage>/<key>/``, where ``key`` hashes the stage's spec (the resolved
config values that decide its output, and the keys of the stages it reads). ``done.json`` is written atomically
last, so a folder without it is an unfinished stage: a re-run or a crashed multirun starts that stage again in the
same folder (annotation then resumes frame by frame from its own store). A file lock serialises two jobs that need
the same stage at once (e.g. a SLURM multirun whose methods share one trained model).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samqa_framework.utils.io import atomic_write_json

log = logging.getLogger(__name__)

DONE = "done.json"


def spec_key(spec: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able spec (key order does not matter)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class StageResult:
    name: str
    key: str
    dir: Path
    outputs: dict[str, Any]
    wall_s: float      # the stage's own run time (the run that produced it, when cached)
    cached: bool


class StageCache:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def run(self, name: str, spec: Mapping[str, Any], fn: Callable[[Path], Mapping[str, Any]]) -> StageResult:
        """``fn(stage_dir) -> outputs`` (JSON-able) unless a finished run of the same spec exists."""
        key = spec_key(spec)
        stage_dir = self.root / name / key
        stage_dir.mkdir(parents=True, exist_ok=True)
        with open(stage_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = stage_dir / DONE
            if done.is_file():
                rec = json.loads(done.read_text())
                log.info("%s: cached (%s)", name, stage_dir)
                return StageResult(name, key, stage_dir, rec["outputs"], rec["wall_s"], True)
            atomic_write_json(stage_dir / "spec.json", dict(spec))
            start = time.perf_counter()
            outputs = dict(fn(stage_dir))
            wall = time.perf_counter() - start
            atomic_write_json(done, {"stage": name, "key": key, "outputs": outputs, "wall_s": round(wall, 2),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
            return StageResult(name, key, stage_dir, outputs, wall, False)
