"""samqa-review: fix a finished run's labels in the browser (a box, a removal, identities swapped from a frame on).

    samqa-review labels=outputs/annotate/<run>/labels      # open the printed URL; Ctrl-C when done

Every fix is journaled in the label store and the label files are rebuilt from it (samqa-export sees the fixes).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from samqa_framework.utils.hydra import CONFIG_DIR, run_task


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="review")
@run_task
def main(cfg: DictConfig) -> float | list[float] | None:
    from samqa_framework.api import run_app  # the task's heavy imports only once a job runs (fast --help)

    return run_app("review", cfg)


if __name__ == "__main__":
    main()
