"""sam2 uses Hydra's global state (at import, and to compose its model configs): it must not break our apps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.version import getbase

from samqa_framework.models.sam2.build import build_sam2_model
from samqa_framework.utils.hydra import CONFIG_DIR
from tests.models.helpers_checkpoints import SAM2_CONFIG, SAM2_TEST_SIZE


def test_build_inside_our_hydra_context_keeps_it(sam2_checkpoint: Path) -> None:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            before = compose("generate")
            hydra_obj = GlobalHydra.instance().hydra
            model = build_sam2_model(SAM2_CONFIG, sam2_checkpoint, image_size=SAM2_TEST_SIZE)
            assert model.image_size == SAM2_TEST_SIZE
            assert GlobalHydra.instance().hydra is hydra_obj and str(getbase()) == "1.3"
            assert compose("generate") == before  # our config dir still answers
    finally:
        GlobalHydra.instance().clear()
    # outside any context, too: sam2 gets its own Hydra and leaves none behind
    build_sam2_model(SAM2_CONFIG, None, image_size=SAM2_TEST_SIZE, allow_random=True)
    assert not GlobalHydra.instance().is_initialized()


APP = """\
from hydra.core.global_hydra import GlobalHydra

from samqa_framework.models.sam2.build import build_sam2_model  # imports sam2 before the app starts

assert not GlobalHydra.instance().is_initialized(), "importing sam2 left Hydra initialised"

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path=".", config_name="app")
def main(cfg) -> None:
    model = build_sam2_model(cfg.sam2.config, cfg.sam2.checkpoint, image_size=cfg.sam2.image_size,
                             device=cfg.sam2.device, video=True)
    again = compose("app", overrides=["sam2.image_size=96"])  # the app's own Hydra still composes its configs
    print("OK", HydraConfig.get().job.name, model.image_size, again.sam2.image_size, type(model).__name__)


if __name__ == "__main__":
    main()
"""


def test_hydra_main_app_builds_sam2(tmp_path: Path, sam2_checkpoint: Path) -> None:
    (tmp_path / "sam2_app.py").write_text(APP)
    (tmp_path / "app.yaml").write_text(textwrap.dedent(f"""\
        defaults:
          - sam2: default
          - _self_
        hydra:
          searchpath: ["file://{CONFIG_DIR}"]
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "sam2_app.py", f"sam2.checkpoint={sam2_checkpoint}",
                           f"sam2.image_size={SAM2_TEST_SIZE}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"OK sam2_app {SAM2_TEST_SIZE} 96 SAM2VideoPredictor" in proc.stdout
