"""ultralytics' YOLO trainer, validator and predictor with every way out to the network shut.

``YOLO_OFFLINE=1`` (``utils/offline.py``) only stops ultralytics' own online check; it still reaches out here:

- integration callbacks: W&B, TensorBoard, MLflow, Comet, ClearML, DVC, Ray Tune, Platform (hub) and the analytics
  events are added to every trainer, validator and predictor from the user's ultralytics settings file and env vars
  (``ULTRALYTICS_API_KEY``). Our framework logs to W&B itself, one run per job: a second run started by ultralytics
  would be a bug. The settings file is left as it is; the callbacks are dropped from each of our instances instead.
- fonts: ``check_det_dataset`` asks the asset server for Arial.ttf (an HTTP request even offline), for plots we never
  make (``plots=False``).
- the AMP check: on CUDA it downloads yolo26n.pt to compare FP32 and FP16 outputs.

Each fix lives in a subclass method, so it also holds in the worker processes of multi-GPU (DDP) training, which
rebuild the trainer from its class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from copy import copy
from typing import Any

import torch
import ultralytics.data.utils as data_utils
import ultralytics.engine.trainer as trainer_module
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionTrainer, DetectionValidator
from ultralytics.utils import LOGGER, WEIGHTS_DIR
from ultralytics.utils.checks import check_amp

# Modules whose callbacks talk to a service; ultralytics.utils.callbacks.base holds the default no-ops, kept.
_INTEGRATION_PREFIX = "ultralytics.utils.callbacks."
_INTEGRATION_MODULES = ("ultralytics.utils.events",)


def _is_integration(callback: Any) -> bool:
    module = getattr(getattr(callback, "func", callback), "__module__", "") or ""  # functools.partial: its func
    return module in _INTEGRATION_MODULES or (module.startswith(_INTEGRATION_PREFIX)
                                              and module != _INTEGRATION_PREFIX + "base")


def drop_integrations(callbacks: dict[str, list]) -> None:
    """Remove ultralytics' integration callbacks in place; ours and the default no-ops stay."""
    for event, cbs in callbacks.items():
        callbacks[event][:] = [cb for cb in cbs if not _is_integration(cb)]


class _NoIntegrations:
    """Drops the integrations before any callback runs. BaseTrainer.__init__ adds them and fires
    on_pretrain_routine_start at once (where W&B starts its run), so this must happen in ``run_callbacks``."""

    callbacks: dict[str, list]

    def run_callbacks(self, event: str) -> None:
        drop_integrations(self.callbacks)
        super().run_callbacks(event)  # type: ignore[misc]


def _no_font(font: str = "Arial.ttf") -> None:
    """Stands in for ``check_font``: we never plot, so no font is looked up or fetched."""
    return None


@contextlib.contextmanager
def no_font_fetch() -> Iterator[None]:
    saved = data_utils.check_font
    data_utils.check_font = _no_font
    try:
        yield
    finally:
        data_utils.check_font = saved


def offline_check_amp(model: torch.nn.Module) -> bool:
    """ultralytics' AMP check without its download: run it only where yolo26n.pt is already local.

    On CPU/MPS AMP is off anyway (ultralytics' own rule). On CUDA without the file the check is skipped and AMP is
    used as configured (``amp: true``); set ``amp: false`` (or ``bf16``) on a GPU known to misbehave with FP16.
    """
    device = next(model.parameters()).device
    if device.type in {"cpu", "mps"}:
        return False
    if (WEIGHTS_DIR / "yolo26n.pt").is_file():
        return check_amp(model)  # the original, from its own module (only the trainer's name is swapped)
    LOGGER.info(f"AMP: check skipped (it needs {WEIGHTS_DIR / 'yolo26n.pt'}, which is never downloaded); "
                "training with AMP as configured")
    return True


class OfflineDetectionValidator(_NoIntegrations, DetectionValidator):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with no_font_fetch():  # a standalone run (the trainer's final one) re-checks the data set
            return super().__call__(*args, **kwargs)


class OfflineDetectionTrainer(_NoIntegrations, DetectionTrainer):
    def get_dataset(self) -> dict:
        with no_font_fetch():
            return super().get_dataset()

    def get_validator(self) -> OfflineDetectionValidator:
        return OfflineDetectionValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args),
                                         _callbacks=self.callbacks)

    def _setup_train(self) -> None:
        saved = trainer_module.check_amp
        trainer_module.check_amp = offline_check_amp
        try:
            super()._setup_train()
        finally:
            trainer_module.check_amp = saved


class OfflineDetectionPredictor(_NoIntegrations, DetectionPredictor):
    pass
