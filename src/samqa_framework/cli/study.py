"""samqa-study: the paper's study. Each job: a method's labels for a data set -> YOLOv8 -> ByteTrack -> IDF1/HOTA.

    samqa-study -m                                   # the quick study: every method of hydra.sweeper.params
    samqa-study annotator=samqa                      # one method (one row)
    samqa-study -m annotator=samqa,watershed_unet data=synthetic_rats,synthetic_mice
    samqa-study -m experiment=quick_all              # every method on both data sets

Stages are cached by their config (``study.cache_dir``): a re-run or a crashed multirun picks up where it stopped.
Table 2, ``results.json`` and the figures are written when the run / multirun ends; the folder is printed last.
Each job returns its primary tracker variant's IDF1 to a Hydra sweeper (NaN when skipped or failed).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="study")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("study", cfg)


if __name__ == "__main__":
    main()
