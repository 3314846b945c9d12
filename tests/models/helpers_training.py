"""What the Lightning-module tests share."""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning.pytorch import Callback, LightningModule


class NanAt(Callback):
    """Fills ``parameter(module)`` with NaN before the batch of global step ``step`` (a training that diverges)."""

    def __init__(self, step: int, parameter: Callable[[LightningModule], torch.Tensor]) -> None:
        self.step = step
        self.parameter = parameter

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                self.parameter(pl_module).fill_(float("nan"))
