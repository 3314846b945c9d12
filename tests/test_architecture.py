"""The package's import layers (.importlinter): cli -> api -> study -> stages -> data | models -> utils."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import samqa_framework
from samqa_framework.utils.hydra import CONFIG_DIR

REPO = CONFIG_DIR.parent
CONTRACT = REPO / ".importlinter"
PACKAGE = Path(samqa_framework.__file__).parent


def test_the_import_layers_are_kept() -> None:
    assert lint_imports(config_filename=str(CONTRACT), no_cache=True, no_logo=True) == 0


@pytest.mark.parametrize("module,line", [
    ("study/report.py", "from samqa_framework.cli import study"),              # nothing imports an app
    ("data/rle.py", "from samqa_framework.models.sam import inputs"),          # data and models are siblings
    ("annotate/base.py", "from samqa_framework.evaluate import report"),       # so are the stages
    ("utils/io.py", "import samqa_framework.training"),                        # utils is the bottom layer
])
def test_an_import_against_the_layers_breaks_the_contract(tmp_path: Path, module: str, line: str) -> None:
    """The check can fail: the same contract on a copy of the package with one forbidden import added."""
    copy = tmp_path / "samqa_framework"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    shutil.copy(CONTRACT, tmp_path / ".importlinter")
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "BROKEN" in proc.stdout and module.replace("/", ".").removesuffix(".py") in proc.stdout


def test_the_apps_and_the_api_import_nothing_heavy() -> None:
    """``samqa-<app> --help`` and tab completion import the app module only: no torch, Lightning, ultralytics."""
    code = ("import sys, samqa_framework, samqa_framework.api\n"
            "import samqa_framework.cli.generate, samqa_framework.cli.evaluate, samqa_framework.cli.train\n"
            "import samqa_framework.cli.annotate, samqa_framework.cli.study, samqa_framework.cli.demo\n"
            "samqa_framework.compose, samqa_framework.run\n"
            "print(sorted(m for m in ('torch', 'lightning', 'ultralytics', 'cv2', 'trackeval', 'sam2', 'wandb')"
            " if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
