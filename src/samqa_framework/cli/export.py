"""samqa-export: a samqa-annotate run's labels in another tool's format (COCO, YOLO segmentation, Label Studio, MOT).

    samqa-export labels=outputs/annotate/<run>/labels format=coco out_dir=DIR
    samqa-export labels=outputs/annotate/<run>/labels format=labelstudio out_dir=DIR   # review in Label Studio
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("export", cfg)


if __name__ == "__main__":
    main()
