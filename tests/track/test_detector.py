"""YOLOv8 detector stage: offline training on an exported label set, streamed detection, bad label sets."""

from __future__ import annotations

import io
import socket
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import torch
import ultralytics.utils.callbacks as yolo_callbacks
import ultralytics.utils.downloads as yolo_downloads
import wandb
from hydra.utils import instantiate
from omegaconf import OmegaConf
from ultralytics.engine.results import Boxes

from samqa_framework.data.mot import MotTable
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.data.yolo_export import export_yolo, write_data_yaml
from samqa_framework.track.detector import DetectorRun, YoloDetector, epochs_for_iterations
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.hydra import CONFIG_DIR

TINY = {"imgsz": 64, "batch": 8, "workers": 0, "epochs": 1}


def detector(**overrides: object) -> YoloDetector:
    """The shipped yolov8n config, shrunk for a test."""
    cfg = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "detector" / "yolov8n.yaml"), TINY, overrides)
    return instantiate(cfg, _convert_="all")


def refuse_network(mp: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Every way to the network (and W&B) fails and is recorded in ``calls``."""

    def refuse(name: str):
        def _refused(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise OSError(f"test: {name} called")
        return _refused

    for obj, attr in ((socket.socket, "connect"), (socket, "getaddrinfo"), (urllib.request, "urlopen"),
                      (requests.Session, "request"), (yolo_downloads, "safe_download"), (wandb, "init")):
        mp.setattr(obj, attr, refuse(f"{getattr(obj, '__name__', obj)}.{attr}"))


@pytest.fixture(scope="module")
def trained(yolo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[DetectorRun, list[str]]:
    """One tiny training run, with every way to the network refused and recorded."""
    calls: list[str] = []

    def fake_wandb_callback(trainer: object) -> None:
        wandb.init()  # what ultralytics' W&B integration does in on_pretrain_routine_start

    fake_wandb_callback.__module__ = "ultralytics.utils.callbacks.wb"
    add_integrations = yolo_callbacks.add_integration_callbacks

    def add_with_wandb(instance: object) -> None:  # as if the user's ultralytics settings had wandb: true
        add_integrations(instance)
        instance.callbacks["on_pretrain_routine_start"].append(fake_wandb_callback)

    with pytest.MonkeyPatch.context() as mp:
        refuse_network(mp, calls)
        mp.setattr(yolo_callbacks, "add_integration_callbacks", add_with_wandb)
        # 5 iterations of batch 8 over 40 images: 1 epoch, through the iterations path
        run = detector(iterations=5, epochs=99).train(yolo_set, tmp_path_factory.mktemp("runs") / "yolo")
    return run, calls


def test_training_writes_weights_and_metrics_offline(trained: tuple[DetectorRun, list[str]]) -> None:
    run, calls = trained
    assert calls == [], f"training reached for the network or W&B: {calls}"
    assert wandb.run is None
    assert run.weights.is_file() and run.weights.name in ("best.pt", "last.pt")
    assert run.weights.parent.parent.name == "yolo"  # the run folder is exactly out_dir
    assert run.results_csv.is_file() and run.epochs == 1 and run.wall_s > 0
    assert "metrics/mAP50(B)" in run.metrics and "metrics/mAP50-95(B)" in run.metrics
    assert not list(run.weights.parent.parent.glob("*.png")), "plots are off"


def test_detect_yields_every_frame_in_bounded_chunks(trained: tuple[DetectorRun, list[str]], tiny_rats: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "eval")[1]
    frames = seq.frames()

    class Counting:  # a frame source that counts the frames read so far
        path, num_frames, width, height, fps = frames.path, len(frames), frames.width, frames.height, frames.fps
        read = 0

        def __len__(self) -> int:
            return self.num_frames

        def __iter__(self):
            for image in frames:
                Counting.read += 1
                yield image

    calls: list[str] = []
    refuse_network(monkeypatch, calls)
    det = detector(conf=0.0, max_det=5, predict_batch=8)  # a barely trained model: keep every box to see shapes
    stream = det.detect(trained[0].weights, Counting())
    first = next(stream)
    assert first[0] == 1 and Counting.read <= 8, "frames must be read a chunk at a time"
    out = [first, *stream]
    assert calls == [], f"detection reached for the network: {calls}"
    assert [f for f, _ in out] == list(range(1, len(frames) + 1))
    assert all(d.dtype == np.float32 and d.ndim == 2 and d.shape[1] == 6 and len(d) <= 5 for _, d in out)
    assert any(len(d) for _, d in out)
    boxes = Boxes(out[0][1], (frames.height, frames.width))  # what the tracking stage wraps each frame's array in
    assert boxes.xyxy.shape == (len(out[0][1]), 4) and boxes.conf.shape == (len(out[0][1]),)


def test_missing_checkpoint_or_bare_name_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'model'.*nothing is downloaded"):
        YoloDetector(model=str(tmp_path / "yolov8n.pt"))
    with pytest.raises(ConfigError, match=r"'model'"):
        YoloDetector(model="yolov8n")  # ultralytics would add .pt and download it
    with pytest.raises(ConfigError, match=r"'extra'"):
        YoloDetector(model="yolov8n.yaml", extra={"plots": True})
    with pytest.raises(DataFormatError, match="weights not found"):
        YoloDetector(model="yolov8n.yaml").detect(tmp_path / "best.pt", [])


def _label_set(root: Path, labels: list[str]) -> Path:
    """A hand-written export: one 32x32 image per label text, train and val the same."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for k, text in enumerate(labels):
            cv2.imwrite(str(root / "images" / split / f"s_{k + 1:06d}.jpg"), np.zeros((32, 32, 3), np.uint8))
            (root / "labels" / split / f"s_{k + 1:06d}.txt").write_text(text)
    return write_data_yaml(root, {"train": "train", "val": "val"}, ["animal"])


def test_empty_label_set_is_refused_before_training(tmp_path: Path, tiny_rats: Path) -> None:
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "eval")[0]
    export_yolo([("a", seq.frames(), MotTable.empty())], tmp_path, "train", every=5)
    export_yolo([("a", seq.frames(), MotTable.empty())], tmp_path, "val", every=5)
    data_yaml = write_data_yaml(tmp_path, {"train": "train", "val": "val"}, ["animal"])
    with pytest.raises(DataFormatError, match="empty label set") as info:
        detector().train(data_yaml, tmp_path / "run")
    assert info.value.path == str(tmp_path / "labels" / "train")
    assert not (tmp_path / "run").exists(), "nothing may start before the label set is checked"


def test_class_id_beyond_the_names_is_refused(tmp_path: Path) -> None:
    data_yaml = _label_set(tmp_path, ["0 0.5 0.5 0.2 0.2\n", "0 0.3 0.3 0.1 0.1\n3 0.5 0.5 0.1 0.1\n"])
    with pytest.raises(DataFormatError, match="class id 3") as info:
        detector().train(data_yaml, tmp_path / "run")
    assert info.value.path == str(tmp_path / "labels" / "train" / "s_000002.txt") and info.value.line == 2
    assert not (tmp_path / "run").exists()
    (tmp_path / "labels" / "train" / "s_000002.txt").write_text("")
    (tmp_path / "labels" / "val" / "s_000001.txt").write_text("0 0.5 1.5 0.1 0.1\n")
    with pytest.raises(DataFormatError, match="normalised") as info:  # the val split is checked too
        detector().train(data_yaml, tmp_path / "run")
    assert info.value.path == str(tmp_path / "labels" / "val" / "s_000001.txt")


def test_epochs_from_iterations() -> None:
    assert epochs_for_iterations(300, 16, 1000) == 5  # the quick rat set: 1000 training frames
    assert epochs_for_iterations(5, 8, 40) == 1
    assert epochs_for_iterations(250, 16, 40) == 100
    assert epochs_for_iterations(1, 16, 10_000) == 1
    with pytest.raises(ValueError):
        epochs_for_iterations(0, 16, 100)
    with pytest.raises(ConfigError, match=r"'iterations'"):
        YoloDetector(model="yolov8n.yaml", iterations=0)


def test_amp_check_never_downloads(trained: tuple[DetectorRun, list[str]], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ultralytics.data.utils as yolo_data
    import ultralytics.engine.trainer as yolo_trainer
    import ultralytics.utils.checks as yolo_checks

    from samqa_framework.track import yolo_offline

    # training swapped ultralytics' functions only while it ran
    assert yolo_trainer.check_amp is yolo_checks.check_amp and yolo_data.check_font is yolo_checks.check_font
    monkeypatch.setattr(yolo_offline, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(yolo_offline, "check_amp", lambda model: pytest.fail("would load (download) yolo26n.pt"))
    assert yolo_offline.offline_check_amp(torch.nn.Linear(2, 2)) is False  # CPU: no AMP, as ultralytics decides
    accelerator = torch.nn.Linear(2, 2, device="meta")  # not a CPU: where ultralytics would download
    assert yolo_offline.offline_check_amp(accelerator) is True
    (tmp_path / "yolo26n.pt").touch()
    monkeypatch.setattr(yolo_offline, "check_amp", lambda model: "checked")
    assert yolo_offline.offline_check_amp(accelerator) == "checked"  # a local yolo26n.pt: the real check runs


def test_bars_become_lines_in_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import ultralytics.utils as yolo_utils
    from ultralytics.utils import TQDM

    from samqa_framework.track.yolo_console import ultralytics_console

    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    saved = yolo_utils.VERBOSE, yolo_utils.LOGGER.level
    with ultralytics_console(verbose=True):
        assert sys.stdout is not log and yolo_utils.VERBOSE is True
        for _ in TQDM(range(50), desc="epoch 1"):  # 50 redraws
            pass
        for _ in TQDM(range(3), desc="val"):
            pass
    assert sys.stdout is log and (yolo_utils.VERBOSE, yolo_utils.LOGGER.level) == saved
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue(), lines
    assert lines[0].startswith("epoch 1: 100%") and "50/50" in lines[0] and lines[1].startswith("val: 100%")
