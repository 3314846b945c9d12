"""kill -9 at random moments of annotate, import (a video import and a synthetic render), evaluate and a study, then
the same command again: the outputs equal those of an uninterrupted run, byte for byte, with no temporary left.

Each command runs as a user runs it (its own process, ``python -m samqa_framework.cli.<task>``), is killed three
times at moments drawn from [0, the uninterrupted run's duration] (``SAMQA_KILL_SEED`` picks them; the moments are
in the assertion message), and then runs to the end."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.faults.conftest import snapshot

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SAMQA_KILL_SEED", "13"))
KILLS = 3


def _cmd(task: str, *overrides: str) -> list[str]:
    return [sys.executable, "-m", f"samqa_framework.cli.{task}", *overrides]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "SAMQA_ROOT": str(root), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1"}


def _finish(cmd: list[str], root: Path, started: Path | None = None) -> tuple[float, float, str]:
    """Run to the end (exit status 0): when ``started`` appeared (the work began, after Python's and Hydra's start;
    0 without one), the wall time and stdout."""
    begin = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    began = 0.0
    while started is not None and not began and proc.poll() is None:
        if started.exists():
            began = time.monotonic() - begin
        time.sleep(0.01)
    out, err = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return began, time.monotonic() - begin, out


def _kill_after(cmd: list[str], root: Path, delay: float) -> bool:
    """Start ``cmd`` and kill -9 it ``delay`` seconds later; whether it was still running then."""
    proc = subprocess.Popen(cmd, cwd=root, env=_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


def _killed_then_finished(cmd: list[str], root: Path, began: float, full_s: float,
                          rng: random.Random) -> tuple[list[float], str]:
    """``KILLS`` kill -9s at moments drawn from the work's part of an uninterrupted run (``began`` to ``full_s``
    seconds after the start: Python's and Hydra's start-up left out), then a run to the end; the moments and the
    last run's stdout."""
    moments = [round(rng.uniform(began, max(full_s, began + 0.05)), 2) for _ in range(KILLS)]
    killed = [_kill_after(cmd, root, delay) for delay in moments]
    assert any(killed), f"no kill came before the end (moments {moments} s): nothing was tested"
    return moments, _finish(cmd, root)[2]


def _outputs(folder: Path) -> dict[str, str]:
    """A folder's files as the comparison sees them: Hydra's own records and logs left out (they hold times)."""
    return {k: v for k, v in snapshot(folder).items()
            if not k.startswith(".hydra") and not k.endswith(".log") and "/.hydra" not in k}


def _temporaries(tree: dict[str, str]) -> list[str]:
    return [k for k in tree if Path(k).name.endswith((".tmp", ".old", ".commit")) or ".tmp." in Path(k).name]


def _same(full: Path, killed: Path, moments: list[float]) -> None:
    a, b = _outputs(full), _outputs(killed)
    assert not _temporaries(b), f"temporaries left after kills at {moments} s: {_temporaries(b)}"
    assert a == b, f"outputs differ after kills at {moments} s (SAMQA_KILL_SEED={SEED})"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


def test_annotate(tmp_path: Path, rng: random.Random) -> None:
    args = ["annotator=samqa", "data.size=tiny", "model.image_size=64", "logger=csv", "progress=false",
            f"paths.dataset_dir={tmp_path / 'data'}"]
    began, full_s, _ = _finish(_cmd("annotate", *args, f"out_dir={tmp_path / 'full'}"), tmp_path, tmp_path / "full")
    moments, _ = _killed_then_finished(_cmd("annotate", *args, f"out_dir={tmp_path / 'killed'}"), tmp_path, began,
                                       full_s, rng)
    _same(tmp_path / "full", tmp_path / "killed", moments)


def test_video_import(tmp_path: Path, rng: random.Random) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    gen = np.random.default_rng(0)
    for i in range(300):
        cv2.imwrite(str(frames / f"{i:05d}.jpg"), gen.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    args = ["data=video", f"data.source={frames}", "data.num_animals=2", "data.splits.eval=[200,null]"]
    began, full_s, _ = _finish(_cmd("generate", *args, f"out_dir={tmp_path / 'full'}"), tmp_path, tmp_path / "full")
    moments, _ = _killed_then_finished(_cmd("generate", *args, f"out_dir={tmp_path / 'killed'}"), tmp_path, began,
                                       full_s, rng)
    _same(tmp_path / "full", tmp_path / "killed", moments)


def test_synthetic_render(tmp_path: Path, rng: random.Random) -> None:
    args = ["data.size=tiny"]
    began, full_s, _ = _finish(_cmd("generate", *args, f"out_dir={tmp_path / 'full'}"), tmp_path, tmp_path / "full")
    moments, _ = _killed_then_finished(_cmd("generate", *args, f"out_dir={tmp_path / 'killed'}"), tmp_path, began,
                                       full_s, rng)
    _same(tmp_path / "full", tmp_path / "killed", moments)


def _metrics(folder: Path) -> dict[str, str]:
    return {k: v for k, v in _outputs(folder).items() if k.startswith("metrics.")}


def test_evaluate(tmp_path: Path, rng: random.Random) -> None:
    _finish(_cmd("generate", "data.size=tiny", f"out_dir={tmp_path / 'data'}"), tmp_path)
    old_pred, pred = tmp_path / "old_pred", tmp_path / "pred"
    old_pred.mkdir()
    pred.mkdir()
    for seq in ("synthetic_rats-eval1", "synthetic_rats-eval2"):  # the ground truth; a track cut short
        rows = (tmp_path / "data" / seq / "gt" / "gt.txt").read_text().splitlines()
        (old_pred / f"{seq}.txt").write_text("\n".join(rows) + "\n")
        (pred / f"{seq}.txt").write_text("\n".join(rows[: len(rows) // 2]) + "\n")
    args = [f"gt_dir={tmp_path / 'data'}", "logger=csv"]
    _finish(_cmd("evaluate", *args, f"pred_dir={old_pred}", f"out_dir={tmp_path / 'old'}"), tmp_path)
    _, full_s, _ = _finish(_cmd("evaluate", *args, f"pred_dir={pred}", f"out_dir={tmp_path / 'full'}"), tmp_path)
    old, new = _metrics(tmp_path / "old"), _metrics(tmp_path / "full")
    assert old != new
    killed = tmp_path / "killed"
    _finish(_cmd("evaluate", *args, f"pred_dir={old_pred}", f"out_dir={killed}"), tmp_path)
    cmd = _cmd("evaluate", *args, f"pred_dir={pred}", f"out_dir={killed}")
    # no file tells when evaluate's own work starts: moments over the whole run, start-up included
    moments = [round(rng.uniform(0.0, full_s), 2) for _ in range(KILLS * 2)]
    for delay in moments:  # after each kill: the old three files or the new three, never a mix
        assert _kill_after(cmd, tmp_path, delay) or _metrics(killed) == new
        assert _metrics(killed) in (old, new), f"a mix of two runs after a kill at {delay} s"
    _finish(cmd, tmp_path)
    assert _metrics(killed) == new and not _temporaries(_outputs(killed)), moments


def test_study(tmp_path: Path, rng: random.Random) -> None:
    args = ["experiment=study_smoke", "annotator=manual", "logger=csv", "progress=false",
            f"paths.dataset_dir={tmp_path / 'data'}"]
    full_cache, killed_cache = tmp_path / "cache_full", tmp_path / "cache_killed"
    began, full_s, out = _finish(_cmd("study", *args, f"study.cache_dir={full_cache}"), tmp_path, full_cache)
    moments, out_killed = _killed_then_finished(_cmd("study", *args, f"study.cache_dir={killed_cache}"), tmp_path,
                                                began, full_s, rng)
    full = Path(out.strip().splitlines()[-1].removeprefix("results: "))
    again = Path(out_killed.strip().splitlines()[-1].removeprefix("results: "))
    assert (again / "results.json").read_bytes() == (full / "results.json").read_bytes(), moments
    assert (again / "table2.md").read_bytes() == (full / "table2.md").read_bytes(), moments
    assert not _temporaries(snapshot(killed_cache)), moments
