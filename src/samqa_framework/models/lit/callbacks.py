"""Callbacks of the training stages."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from samqa_framework.utils.io import atomic_write_json, atomic_write_text


class MetricTimeline(Callback):
    """After every validation, append ``{step, epoch, minutes, train_minutes, <metrics>}`` to ``<path>.csv`` and
    ``<path>.json`` (rewritten atomically each time): a metric against wall-clock training time.

    ``minutes``: wall-clock since training started (validation included: what ``max_time`` bounds);
    ``train_minutes``: the same without the time spent validating. A ``trainer.validate`` after ``fit`` adds a
    final row at the end time of training.
    """

    def __init__(self, path: str | os.PathLike[str], metrics: Sequence[str] = ("val/iou",)) -> None:
        self.path = Path(path)
        self.metrics = list(metrics)
        self.rows: list[dict[str, Any]] = []
        self._start: float | None = None
        self._end: float | None = None
        self._val_seconds = 0.0
        self._val_start: float | None = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = time.monotonic() - (self.rows[-1]["minutes"] * 60 if self.rows else 0.0)
        self._end = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._end = time.monotonic()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.monotonic()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        now = time.monotonic()
        in_fit = self._end is None
        if self._val_start is not None and in_fit and not trainer.sanity_checking:
            self._val_seconds += now - self._val_start
        if trainer.sanity_checking or self._start is None:
            return
        values = {m: float(trainer.callback_metrics[m]) for m in self.metrics if m in trainer.callback_metrics}
        if not values:
            return
        at = now if in_fit else self._end
        self.rows.append({"step": trainer.global_step, "epoch": trainer.current_epoch,
                          "minutes": round((at - self._start) / 60, 3),
                          "train_minutes": round((at - self._start - self._val_seconds) / 60, 3),
                          "final": not in_fit, **{m: round(v, 5) for m, v in values.items()}})
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fields = list(dict.fromkeys(k for row in self.rows for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path.with_suffix(".csv"), buf.getvalue())
        atomic_write_text(self.path.with_suffix(".json"), json.dumps(self.rows, indent=1) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "val_seconds": self._val_seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
        self._val_seconds = float(state_dict.get("val_seconds", 0.0))


class StepTimes(Callback):
    """Each training step's wall-clock seconds (batch start to batch end, the optimiser step included), written to
    ``path`` (JSON: ``{"seconds": [...], "kernel_seconds": [...], "page_faults": [...]}``) when fit ends: how fast a
    stage trains, for ``scripts/bench_train.py``. Kernel time and minor page faults are the process's own, per step."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows: dict[str, list[float]] = {"seconds": [], "kernel_seconds": [], "page_faults": []}
        self._start: tuple[float, Any] | None = None

    @staticmethod
    def _usage() -> Any:
        import resource  # POSIX only; imported here so the module still loads elsewhere

        return resource.getrusage(resource.RUSAGE_SELF)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = (time.perf_counter(), self._usage())

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._start is None:
            return
        t0, u0 = self._start
        u1 = self._usage()
        self.rows["seconds"].append(time.perf_counter() - t0)
        self.rows["kernel_seconds"].append(u1.ru_stime - u0.ru_stime)
        self.rows["page_faults"].append(float(u1.ru_minflt - u0.ru_minflt))
        self._start = None

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            atomic_write_json(self.path, self.rows)
