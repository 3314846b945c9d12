"""samqa-generate: build a data set (render synthetic rodents, or import MOTChallenge / SLEAP labels).

    samqa-generate data=synthetic_mice data.size=quick out_dir=DIR
    samqa-generate data=sleap_clip out_dir=DIR
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("generate", cfg)


if __name__ == "__main__":
    main()
