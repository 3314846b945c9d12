"""samqa-demo: synthetic data set -> ByteTrack on simulated detections -> TrackEval table and chart.

    samqa-demo                      # synthetic rats, quick size
    samqa-demo data=synthetic_mice  # or any data set config
    samqa-demo tracker.box_source=detection tracker.max_ids=2   # any tracker setting (2 rats: cap at 2 ids)
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="demo")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("demo", cfg)


if __name__ == "__main__":
    main()
