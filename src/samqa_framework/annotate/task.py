"""The annotate task (``samqa-annotate``, ``api.annotate``): label a data set's videos with one method, frame by
frame, resumable. Prints the label-quality table (when the sequences have ground truth) and the labels folder last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch import seed_everything
from omegaconf import DictConfig

from samqa_framework.annotate.ground_truth import GroundTruthMissing
from samqa_framework.annotate.quality import LabelQuality, format_quality
from samqa_framework.annotate.runner import AnnotationResult, annotate_sequence
from samqa_framework.data.identity import sequence_identity
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError, check_number
from samqa_framework.utils.hydra import config_node, instantiate_node
from samqa_framework.utils.loggers import job_loggers, log_summary, log_table
from samqa_framework.utils.names import check_name
from samqa_framework.utils.objective import mean_over

log = logging.getLogger(__name__)


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What makes two runs' labels the same: the method (with its model and QA settings) and the data set's name
    (the annotation adds each sequence's content identity, ``data/identity.py``)."""
    return {"annotator": to_plain(cfg.annotator),
            "data": f"{cfg.data.name}-{cfg.data.get('size', '')}"}


def annotate(cfg: DictConfig) -> list[AnnotationResult]:
    """Label the chosen sequences of ``cfg.data``; one ``AnnotationResult`` per sequence."""
    objective_keys(cfg)  # a typo in the sweep's objective fails now, not after the labelling
    seed_everything(int(cfg.seed), verbose=False)  # random-weight models are the same on a resume
    dataset_dir = Path(cfg.paths.dataset_dir)
    with config_node(cfg, "data"):
        manifest = instantiate(cfg.data, _convert_="all").build(dataset_dir)
    if cfg.split not in ("train", "eval"):
        raise ConfigError("split", f"must be train or eval, got {cfg.split!r}")
    sequences = manifest.sequences(dataset_dir, cfg.split)
    if cfg.get("sequences"):
        wanted = [check_name(s, "sequence name", key="sequences") for s in cfg.sequences]
        unknown = sorted(set(wanted) - {s.name for s in sequences})
        if unknown:
            raise ConfigError("sequences", f"{unknown} not in the {cfg.split} split of {dataset_dir} "
                              f"({[s.name for s in sequences]})")
        sequences = [s for s in sequences if s.name in wanted]
    max_frames = cfg.get("max_frames")
    if max_frames is not None:  # checked here, where the key is read (the runner's own check names its argument)
        max_frames = check_number("max_frames", max_frames, 1, integer=True)
    annotator = instantiate_node(cfg, "annotator", _convert_="all")
    results = []
    skipped: list[GroundTruthMissing] = []
    with job_loggers(cfg) as loggers:
        for seq in sequences:
            try:
                with config_node(cfg, "annotator"):  # what the method checks when it starts on a sequence
                    # the sequence's contents too: another data.source or an edited gt.txt is not resumed into
                    result = annotate_sequence(annotator, seq, Path(cfg.out_dir) / seq.name,
                                               {**fingerprint(cfg), "input": sequence_identity(seq)},
                                               max_frames=max_frames, progress=cfg.get("progress", True),
                                               overlay=cfg.get("overlay", False), num_animals=manifest.num_animals,
                                               read_ahead=cfg.get("read_ahead", 0),
                                               encode_ahead=cfg.get("encode_ahead", False))
            except GroundTruthMissing as exc:  # the others may have it: label those, name this one
                log.error("skipped: %s", exc)
                skipped.append(exc)
                continue
            results.append(result)
            if result.quality:
                print(f"\n{seq.name}:\n{format_quality(annotator.name, result.quality)}")
                numeric = {f"label_quality/{seq.name}/{k}": v for k, v in result.quality.items()
                           if isinstance(v, int | float)}
                log_summary(loggers, numeric)
                keys = [k for k, v in result.quality.items() if isinstance(v, int | float)]
                log_table(loggers, f"label_quality/{seq.name}", ["method", *keys],
                          [[annotator.name, *(result.quality[k] for k in keys)]])
    if skipped and not results:
        raise skipped[0]
    for exc in skipped:
        print(f"not labelled: {exc}")
    print(f"labels: {Path(cfg.out_dir)}")
    return results


def objective_keys(cfg: DictConfig) -> list[str]:
    """``cfg.objective``: the label-quality figures a sweep optimises (keys of ``LabelQuality.result()``)."""
    raw = cfg.get("objective")
    keys = [raw] if isinstance(raw, str) else list(raw or [])
    known = list(LabelQuality().result())
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise ConfigError("objective", f"must list label-quality figures of {known}, got {keys}")
    return keys


def objective(cfg: DictConfig, results: Sequence[AnnotationResult]) -> float | list[float]:
    """What ``samqa-annotate`` returns to a Hydra sweeper: each ``cfg.objective`` figure averaged over the
    sequences with ground truth (NaN when none has it); a float for one figure, a list for several."""
    return mean_over((r.quality for r in results), objective_keys(cfg))
