"""The Python API: compose a config and run any task, from a notebook, a script or a test, as the apps do.

    from samqa_framework import api

    cfg = api.compose("generate", ["data=synthetic_mice", "data.size=tiny"])   # a run folder, as the app makes
    data_dir = api.generate(cfg)
    metrics = api.evaluate([f"gt_dir={data_dir}", f"pred_dir={tracks}", "logger=csv"])   # or overrides

Each task takes a composed config (``DictConfig``) or a list of overrides of its primary config (``conf/<task>.yaml``)
and returns the task's own result (``generate``: the data set's folder; ``evaluate``: metrics per sequence; ``train``:
metrics and the exported model; ``annotate``: one result per sequence; ``study``: the job's row; ``demo``: metrics per
simulated detector; ``export``: the folder written; ``review``: the label set reviewed). The apps (``samqa-<task>``) run
the same functions and return :func:`objective` to Hydra's sweepers. The package root re-exports :func:`compose` and
:func:`run` (``samqa_framework.compose``); the tasks keep their names here only, where they do not clash with the
subpackages (``samqa_framework.annotate``...).

Nothing heavy is imported until a task runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from samqa_framework.utils.errors import TRUST_KEY
from samqa_framework.utils.extras import apply_extras
from samqa_framework.utils.hydra import compose
from samqa_framework.utils.io import check_output_folder
from samqa_framework.utils.trust import trusting

__all__ = ["TASKS", "annotate", "compose", "demo", "evaluate", "export", "generate", "objective", "review", "run",
           "run_app", "study", "train"]

# task -> the module holding `<task>(cfg)` and `objective(cfg, result)` (absent: the app returns None)
TASKS = {"generate": "samqa_framework.data.task", "evaluate": "samqa_framework.evaluate.task",
         "train": "samqa_framework.training", "annotate": "samqa_framework.annotate.task",
         "study": "samqa_framework.study.task", "demo": "samqa_framework.study.demo",
         "export": "samqa_framework.annotate.export", "review": "samqa_framework.annotate.review.task"}

Config = DictConfig | Sequence[str] | None
# the folders a task writes, checked before it starts (a missing key or a null is skipped)
OUTPUT_KEYS = ("out_dir", "study.cache_dir", "paths.output_dir")


def _module(task: str) -> Any:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[task])


def _config(task: str, cfg: Config) -> DictConfig:
    return cfg if isinstance(cfg, DictConfig) else compose(task, list(cfg or []))


def run(task: str, cfg: Config = None) -> Any:
    """Run ``task`` (``generate``, ``evaluate``, ``train``, ``annotate``, ``study``, ``demo``, ``export``, ``review``)
    on a composed config or on overrides of its primary config; returns the task's result. Bad input raises
    (``SamqaError``...).

    The whole task loads checkpoints as ``trust_checkpoint`` says (``utils.trust``; off where a config lacks it)."""
    module = _module(task)
    config = _config(task, cfg)
    for key in OUTPUT_KEYS:  # a folder under a regular file fails before any work
        path = OmegaConf.select(config, key, throw_on_missing=False, default=None)
        if isinstance(path, str) and path:
            check_output_folder(key, path)
    apply_extras(config.get("extras"))  # process-wide (the C allocator's reuse of training steps' memory)
    with trusting(bool(config.get(TRUST_KEY, False))):
        return getattr(module, task)(config)


def objective(task: str, cfg: DictConfig, result: Any) -> float | list[float] | None:
    """What the task's app returns to a Hydra sweeper (``None`` for a task without an objective): study, the
    primary tracker variant's IDF1; annotate, the ``objective`` label-quality figures; evaluate, the combined IDF1;
    train, the stage's first summary metric. NaN for a run without a value (a skipped study job)."""
    fn = getattr(_module(task), "objective", None)
    return fn(cfg, result) if fn is not None else None


def run_app(task: str, cfg: DictConfig) -> float | list[float] | None:
    """What an app (``samqa-<task>``) does with Hydra's config: run the task and return its objective."""
    return objective(task, cfg, run(task, cfg))


def generate(cfg: Config = None) -> Path:
    """Build the data set of ``cfg.data`` into ``cfg.out_dir``; returns that folder."""
    return run("generate", cfg)


def evaluate(cfg: Config = None) -> dict[str, dict[str, float]]:
    """TrackEval metrics of ``cfg.pred_dir`` against ``cfg.gt_dir``, per sequence and ``COMBINED``."""
    return run("evaluate", cfg)


def train(cfg: Config = None) -> dict[str, Any]:
    """Train ``cfg.stage``; returns ``{"metrics", "export", "trainer", "module"}`` (DDP: metrics and export)."""
    return run("train", cfg)


def annotate(cfg: Config = None) -> list[Any]:
    """Label the chosen sequences with ``cfg.annotator``; one ``AnnotationResult`` per sequence."""
    return run("annotate", cfg)


def export(cfg: Config = None) -> Path:
    """Write the label sets of ``cfg.labels`` (a samqa-annotate run) in ``cfg.format`` into ``cfg.out_dir``."""
    return run("export", cfg)


def study(cfg: Config = None) -> dict[str, Any]:
    """One study job (a method's labels for a data set -> detector -> tracker -> metrics); returns its row."""
    return run("study", cfg)


def demo(cfg: Config = None) -> dict[str, dict[str, float]]:
    """ByteTrack on simulated detectors of growing noise; the combined metrics per detector."""
    return run("demo", cfg)


def review(cfg: Config = None) -> Path:
    """Serve the labels of ``cfg.labels`` on the review page until Ctrl-C (or ``cfg.serve_seconds``); returns the
    label set's folder. Fixes are journaled in its label store and its label files rebuilt."""
    return run("review", cfg)
