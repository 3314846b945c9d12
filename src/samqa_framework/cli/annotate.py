"""samqa-annotate: label a data set's videos with one method, frame by frame, resumable.

    samqa-annotate annotator=samqa model.checkpoint=outputs/train/<run>/sam_finetune.pt
    samqa-annotate annotator=manual annotator.every=15
    samqa-annotate out_dir=<a previous run's labels folder>     # resume where it stopped

Prints the label-quality table (when the sequences have ground truth) and the labels folder last. Returns the
``objective`` label-quality figures (mean over the sequences) to a Hydra sweeper.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="annotate")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("annotate", cfg)


if __name__ == "__main__":
    main()
