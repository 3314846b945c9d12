"""samqa-train as a user runs it: bad input is one line (the training itself: tests/test_training.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from samqa_framework.utils.hydra import CONFIG_DIR

TINY = ["data.size=tiny", "model.image_size=64", "logger=csv", "callbacks=none"]


def test_cli_reports_a_bad_key_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SAMQA_ROOT": str(tmp_path), "WANDB_MODE": "offline"}
    proc = subprocess.run([sys.executable, "-m", "samqa_framework.cli.train", *TINY, "stage.datamodule.every=0"],
                          cwd=CONFIG_DIR.parent, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "error: config key 'stage.datamodule.every': must be a whole number >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr
