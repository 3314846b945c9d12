"""samqa-evaluate: HOTA, IDF1, MOTA... with TrackEval for MOTChallenge ground truth and tracker files.

    samqa-evaluate gt_dir=DIR pred_dir=DIR out_dir=DIR

Returns the combined IDF1 to a Hydra sweeper.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("evaluate", cfg)


if __name__ == "__main__":
    main()
