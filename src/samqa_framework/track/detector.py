"""The YOLOv8 detector stage: train on an exported label set, then detect on every frame of a video.

Fully offline: the model is an architecture yaml (random init) or a local ``.pt``; nothing is downloaded, and
ultralytics' own loggers and checks that reach the network are shut off (``yolo_offline.py``). Both are read as data
(``yolo_safe.py``): a ``.pt`` weights only, a yaml checked for known layers before ultralytics parses it. The trainer
is run directly, not through ``YOLO.train``, which also asks PyPI for a newer ultralytics whenever it thinks it is
online. Training writes ultralytics' run folder (``weights/best.pt``, ``last.pt``, ``results.csv``,
``args.yaml``) exactly at ``out_dir``.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samqa_framework.data.video import IMAGE_EXTS, FrameSource
from samqa_framework.data.yolo_export import check_label_set, read_data_yaml
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.offline import configure_offline

log = logging.getLogger(__name__)

# Set by our own code: the run folder, offline-ness and the prediction-only keys must not be overridden by `extra`.
_RESERVED = {"model", "data", "task", "mode", "project", "name", "exist_ok", "save_dir", "plots", "resume",
             "epochs", "conf", "iou", "max_det", "batch", "imgsz", "device", "verbose"}


@dataclass
class DetectorRun:
    weights: Path             # best.pt (best validation fitness), else last.pt
    results_csv: Path
    metrics: dict[str, float]  # the final row of results.csv, e.g. "metrics/mAP50(B)"
    epochs: int               # epochs actually run (early stopping may end sooner)
    wall_s: float


def epochs_for_iterations(iterations: int, batch: int, num_images: int) -> int:
    """Epochs that give at least ``iterations`` batches: ceil(iterations * batch / num_images), at least 1."""
    if iterations < 1 or batch < 1 or num_images < 1:
        raise ValueError(f"iterations, batch and num_images must be >= 1, got {iterations}, {batch}, {num_images}")
    return max(1, math.ceil(iterations * batch / num_images))


def read_results_rows(path: Path) -> list[dict[str, float]]:
    """Every epoch's row of ultralytics' results.csv (``epoch``, losses, ``metrics/mAP50(B)``, ...), column names
    stripped (older versions pad them)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k.strip(): float(v) for k, v in row.items() if k is not None and v not in (None, "")}
                for row in csv.DictReader(fh)]


def read_results_csv(path: Path) -> dict[str, float]:
    """The last row of ultralytics' results.csv (see ``read_results_rows``)."""
    rows = read_results_rows(path)
    if not rows:
        raise DataFormatError(path, "results.csv holds no epoch")
    return rows[-1]


class YoloDetector:
    """YOLOv8 via ultralytics: ``train`` on a data.yaml from ``write_data_yaml``, ``detect`` on a frame source.

    ``model``: an architecture yaml (``yolov8n.yaml``: random init) or the path of a local ``.pt`` (its weights are
    the starting point). ``iterations``: when set, the number of epochs is derived so that training runs about this
    many batches (see :func:`epochs_for_iterations`); else ``epochs``. ``extra``: further ultralytics train
    arguments (e.g. ``{cache: ram, fraction: 0.5}``), except those this class sets itself.
    Training arguments keep ultralytics' names; ``conf``/``iou``/``max_det``/``predict_batch`` are for ``detect``
    only (validation during training keeps ultralytics' conf 0.001 so that mAP sees the whole curve).
    """

    def __init__(self, model: str, imgsz: int = 640, epochs: int = 10, iterations: int | None = None,
                 batch: int = 16, optimizer: str = "SGD", lr0: float = 0.01, hsv_h: float = 0.015,
                 translate: float = 0.1, scale: float = 0.5, fliplr: float = 0.5, flipud: float = 0.5,
                 mosaic: float = 1.0, close_mosaic: int = 2, device: str | int | list[int] = "cpu",
                 workers: int = 4, seed: int = 0, deterministic: bool = True, amp: bool | str = True,
                 patience: int = 100, conf: float = 0.1, iou: float = 0.7, max_det: int = 100, predict_batch: int = 16,
                 verbose: bool = True, threads: int | None = None, extra: Mapping[str, Any] | None = None) -> None:
        self.model = self._check_model(str(model))
        if threads is not None and (int(threads) != threads or threads < 1):
            raise ConfigError("threads", f"must be a whole number >= 1 or null, got {threads}")
        self.threads = None if threads is None else int(threads)
        for key, value in (("imgsz", imgsz), ("epochs", epochs), ("batch", batch), ("max_det", max_det),
                           ("predict_batch", predict_batch)):
            if int(value) != value or value < 1:
                raise ConfigError(key, f"must be a whole number >= 1, got {value}")
        if iterations is not None and (int(iterations) != iterations or iterations < 1):
            raise ConfigError("iterations", f"must be a whole number >= 1 or null, got {iterations}")
        for key, value in (("conf", conf), ("iou", iou)):
            if not 0 <= value <= 1:
                raise ConfigError(key, f"must be in [0, 1], got {value}")
        self.imgsz, self.epochs, self.batch = int(imgsz), int(epochs), int(batch)
        self.iterations = None if iterations is None else int(iterations)
        self.train_args: dict[str, Any] = {
            "optimizer": optimizer, "lr0": float(lr0), "hsv_h": float(hsv_h), "translate": float(translate),
            "scale": float(scale), "fliplr": float(fliplr), "flipud": float(flipud), "mosaic": float(mosaic),
            "close_mosaic": int(close_mosaic), "workers": int(workers), "seed": int(seed),
            "deterministic": bool(deterministic), "amp": amp, "patience": int(patience)}
        taken = sorted((_RESERVED | set(self.train_args)) & set(extra or {}))
        if taken:
            raise ConfigError("extra", f"{taken} are set by the detector itself (use its own keys)")
        self.train_args.update(extra or {})
        # "0,1" on Hydra's command line is a sweep: several GPUs come as a list, ultralytics takes "0,1"
        self.device = ",".join(map(str, device)) if isinstance(device, list | tuple) else device
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.predict_batch = int(predict_batch)
        self.verbose = bool(verbose)

    @staticmethod
    def _check_model(model: str) -> str:
        suffix = Path(model).suffix.lower()
        if "://" in model:  # ultralytics would fetch it
            raise ConfigError("model", f"{model!r} is a URL; nothing is downloaded: give a local file")
        if suffix == ".pt":
            if not Path(model).is_file():
                raise ConfigError("model", f"checkpoint {model} not found; nothing is downloaded: give the path of a "
                                           "local .pt, or an architecture yaml such as yolov8n.yaml (random init)")
        elif suffix not in (".yaml", ".yml"):  # ultralytics would add .pt and try to download it
            raise ConfigError("model", f"{model!r} is neither a local .pt checkpoint nor an architecture yaml "
                                       "(e.g. yolov8n.yaml)")
        return model

    # -- training -------------------------------------------------------------------------------------------------

    def train(self, data_yaml: Path, out_dir: Path) -> DetectorRun:
        """Train on ``data_yaml`` (train and val splits as written by ``write_data_yaml``) into ``out_dir``."""
        configure_offline()
        data_yaml, out_dir = Path(data_yaml), Path(out_dir).resolve()
        root, splits, names = read_data_yaml(data_yaml)
        # the one check of the YOLO folders (ultralytics would drop bad lines and train on an empty set): an empty or
        # mislabelled set fails here, in seconds, not after hours
        check_label_set(root, splits["train"], names)
        check_label_set(root, splits["val"], names, require_boxes=False)
        epochs = self.epochs
        if self.iterations is not None:
            num_images = _count_images(root / "images" / splits["train"])
            epochs = epochs_for_iterations(self.iterations, self.batch, num_images)
            log.info("detector: %d iterations at batch %d over %d images -> %d epochs", self.iterations,
                     self.batch, num_images, epochs)
        self._check_architecture()

        from samqa_framework.track.yolo_console import ultralytics_console
        from samqa_framework.track.yolo_offline import OfflineDetectionTrainer
        from samqa_framework.track.yolo_safe import safe_ultralytics

        args = {**self.train_args, "model": self.model, "data": str(data_yaml.resolve()), "task": "detect",
                "mode": "train", "epochs": epochs, "imgsz": self.imgsz, "batch": self.batch, "device": self.device,
                "project": str(out_dir.parent), "name": out_dir.name, "exist_ok": True, "plots": False,
                "verbose": self.verbose}
        threads = torch.get_num_threads()  # ultralytics' select_device sets them process-wide on CPU
        start = time.perf_counter()
        try:
            with ultralytics_console(self.verbose), safe_ultralytics(self.model):
                trainer = OfflineDetectionTrainer(overrides=args)
                # after select_device, which sets ultralytics' own count (cores - 1: half the CPU on 2 cores, and
                # 1.7x slower per batch measured here); by default keep the job's own setting
                torch.set_num_threads(self.threads or threads)
                trainer.add_callback("on_fit_epoch_end", _log_epoch)
                trainer.train()
        finally:
            torch.set_num_threads(threads)
        wall = time.perf_counter() - start
        weights = trainer.best if trainer.best.is_file() else trainer.last
        if not weights.is_file():
            raise RuntimeError(f"{out_dir}: training ended without a checkpoint (expected {trainer.best})")
        # ultralytics' "time" column is wall-clock: not a result of the config, so kept out of the metrics
        metrics = {k: v for k, v in read_results_csv(trainer.csv).items() if k != "time"}
        return DetectorRun(weights=weights, results_csv=trainer.csv, metrics=metrics,
                           epochs=int(metrics.get("epoch", epochs)), wall_s=wall)

    def _check_architecture(self) -> None:
        """An architecture yaml exists (ours or ultralytics') and names known layers only (``yolo_safe``)."""
        if Path(self.model).suffix.lower() == ".pt":
            return
        from ultralytics.nn.tasks import yaml_model_load

        from samqa_framework.track.yolo_safe import check_architecture

        try:
            architecture = yaml_model_load(self.model)
        except FileNotFoundError:
            raise ConfigError("model", f"architecture {self.model!r} is neither a file nor one of ultralytics' "
                                       "model yamls (e.g. yolov8n.yaml, yolov8m.yaml)") from None
        check_architecture(architecture, self.model)

    # -- detection ------------------------------------------------------------------------------------------------

    def detect(self, weights: Path, frames: FrameSource,
               image_size: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, (K, 6) float32 x1 y1 x2 y2 score cls)`` for every frame 1..N, (0, 6) when none found.

        Frames are read and predicted ``predict_batch`` at a time, so memory does not grow with the video.
        ``image_size``: the prediction size (ultralytics' ``imgsz``); default: the training ``imgsz``.
        """
        configure_offline()
        weights = Path(weights)
        if not weights.is_file():  # checked here, not when the first frame is asked for
            raise DataFormatError(weights, "detector weights not found (train the detector first)")
        return self._detect(weights, frames, image_size or self.imgsz)

    def _detect(self, weights: Path, frames: FrameSource, imgsz: int) -> Iterator[tuple[int, np.ndarray]]:
        from ultralytics import YOLO

        from samqa_framework.track.yolo_offline import OfflineDetectionPredictor
        from samqa_framework.track.yolo_safe import safe_ultralytics

        with safe_ultralytics(weights):  # the model is read here, once
            model = YOLO(str(weights), task="detect")
        args = {"imgsz": imgsz, "conf": self.conf, "iou": self.iou, "max_det": self.max_det, "device": self.device,
                "verbose": False, "save": False, "predictor": OfflineDetectionPredictor}
        threads = torch.get_num_threads()  # as in train: ultralytics' select_device sets them process-wide
        try:
            chunk: list[np.ndarray] = []
            first = 1
            for image in frames:
                chunk.append(image)
                if len(chunk) == self.predict_batch:
                    yield from _predict(model, chunk, first, args)
                    first += len(chunk)
                    chunk = []
            if chunk:
                yield from _predict(model, chunk, first, args)
        finally:
            torch.set_num_threads(threads)


def _predict(model: Any, chunk: list[np.ndarray], first: int,
             args: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
    results = model.predict(chunk, batch=len(chunk), **args)
    for k, result in enumerate(results):
        yield first + k, result.boxes.data.cpu().numpy().astype(np.float32).reshape(-1, 6)


def _log_epoch(trainer: Any) -> None:
    """One line per epoch in our own log (Hydra's job log): ultralytics logs to stdout only."""
    m = trainer.metrics or {}
    scores = m.get("metrics/mAP50(B)", float("nan")), m.get("metrics/mAP50-95(B)", float("nan"))
    if getattr(trainer.validator, "training", True):
        log.info("detector epoch %d/%d: mAP50 %.3f, mAP50-95 %.3f", trainer.epoch + 1, trainer.epochs, *scores)
    else:  # ultralytics' final, standalone validation of best.pt fires the same event once more
        log.info("detector best.pt: mAP50 %.3f, mAP50-95 %.3f", *scores)


def _count_images(folder: Path) -> int:
    n = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else 0
    if not n:
        raise DataFormatError(folder, "no training images")
    return n
