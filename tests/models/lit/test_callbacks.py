"""Callbacks of the training stages (models/lit/callbacks.py)."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from samqa_framework.models.lit.callbacks import StepTimes


def test_step_times_records_every_training_step(tmp_path: Path) -> None:
    path = tmp_path / "times" / "step_times.json"
    trainer = Trainer(accelerator="cpu", max_steps=5, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[StepTimes(path)])
    trainer.fit(BoringModel())
    rows = json.loads(path.read_text())
    assert set(rows) == {"seconds", "kernel_seconds", "page_faults"}
    assert all(len(v) == 5 for v in rows.values())
    assert all(0 < s < 60 for s in rows["seconds"]) and all(k >= 0 for k in rows["kernel_seconds"])
