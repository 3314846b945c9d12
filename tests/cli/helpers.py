"""Run the installed console scripts as a user would (own process, real Hydra, real exit codes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(name: str, *overrides: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAMQA_ROOT": str(cwd), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([str(BIN / name), *overrides], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
