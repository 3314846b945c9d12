"""samqa-train: the SAM-QA model stages (distillation, box-prompted fine-tuning) and the segmentation baselines.

    samqa-train stage=distill stage.module.teacher.checkpoint=sam_vit_b_01ec64.pth
    samqa-train stage=finetune model.checkpoint=outputs/train/<run>/sam_distill.pt
    samqa-train recipe=quick_finetune_rats              # the tuned CPU preset (35 min, 320 px)
    samqa-train ckpt_path=outputs/train/<run>/checkpoints/last.ckpt   # resume
    samqa-train trainer=ddp trainer.devices=2           # DDP, also in multiruns (ranks started by this job)

Builds (or reuses) the data set, trains, validates once more, exports the model (``export_path``, printed last) and
prints a short summary. Returns the stage's first summary metric to a Hydra sweeper.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("train", cfg)


if __name__ == "__main__":
    main()
