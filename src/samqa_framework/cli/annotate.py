"""samqa-annotate: label a data set's videos with one method, frame by frame, resumable.

    samqa-annotate annotator=samqa model.checkpoint=outputs/train/<run>/sam_finetune.pt
    samqa-annotate annotator=manual annotator.every=15
    samqa-annotate out_dir=<a previous run's labels folder>     # resume where it stopped

Prints the label-quality table (when the sequences have ground truth) and the labels folder last.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from lightning.pytorch import seed_everything
from omegaconf import DictConfig, OmegaConf

from samqa_framework.annotate.quality import format_quality
from samqa_framework.annotate.runner import AnnotationResult, annotate_sequence
from samqa_framework.logging.loggers import finish_loggers, instantiate_loggers, log_config, log_summary, log_table
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR, config_node, instantiate_node, run_task

log = logging.getLogger(__name__)


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What makes two runs' labels the same: the method (with its model and QA settings) and the data."""
    return {"annotator": OmegaConf.to_container(cfg.annotator, resolve=True),
            "data": f"{cfg.data.name}-{cfg.data.get('size', '')}"}


def annotate(cfg: DictConfig) -> list[AnnotationResult]:
    """Label the chosen sequences of ``cfg.data``; one ``AnnotationResult`` per sequence."""
    seed_everything(int(cfg.seed), verbose=False)  # random-weight models are the same on a resume
    dataset_dir = Path(cfg.dataset_dir)
    with config_node(cfg, "data"):
        manifest = instantiate(cfg.data, _convert_="all").build(dataset_dir)
    if cfg.split not in ("train", "eval"):
        raise ConfigError("split", f"must be train or eval, got {cfg.split!r}")
    sequences = manifest.sequences(dataset_dir, cfg.split)
    if cfg.get("sequences"):
        wanted = list(cfg.sequences)
        unknown = sorted(set(wanted) - {s.name for s in sequences})
        if unknown:
            raise ConfigError("sequences", f"{unknown} not in the {cfg.split} split of {dataset_dir} "
                              f"({[s.name for s in sequences]})")
        sequences = [s for s in sequences if s.name in wanted]
    annotator = instantiate_node(cfg, "annotator", _convert_="all")
    loggers = instantiate_loggers(cfg.get("logger"))
    results, status = [], "failed"
    try:
        log_config(loggers, cfg)
        for seq in sequences:
            with config_node(cfg, "annotator"):  # what the method checks when it starts on a sequence
                result = annotate_sequence(annotator, seq, Path(cfg.out_dir) / seq.name, fingerprint(cfg),
                                           max_frames=cfg.get("max_frames"), progress=cfg.get("progress", True),
                                           overlay=cfg.get("overlay", False), num_animals=manifest.num_animals)
            results.append(result)
            if result.quality:
                print(f"\n{seq.name}:\n{format_quality(annotator.name, result.quality)}")
                numeric = {f"label_quality/{seq.name}/{k}": v for k, v in result.quality.items()
                           if isinstance(v, int | float)}
                log_summary(loggers, numeric)
                keys = [k for k, v in result.quality.items() if isinstance(v, int | float)]
                log_table(loggers, f"label_quality/{seq.name}", ["method", *keys],
                          [[annotator.name, *(result.quality[k] for k in keys)]])
        status = "success"
    finally:
        finish_loggers(loggers, status)
    print(f"labels: {Path(cfg.out_dir)}")
    return results


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="annotate")
@run_task
def main(cfg: DictConfig) -> None:
    annotate(cfg)


if __name__ == "__main__":
    main()
