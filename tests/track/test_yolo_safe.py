"""ultralytics' model files as data: a .pt that runs code or a yaml with an expression is refused by name, the
detector's own weights (a real short training) still load, and trust_checkpoint=true restores ultralytics' way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics.nn import tasks as yolo_tasks
from ultralytics.nn.tasks import yaml_model_load
from ultralytics.utils import ROOT as YOLO_ROOT

from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.track.yolo_safe import SAFE_LOAD_ENV, check_architecture, safe_ultralytics
from samqa_framework.utils.errors import TRUST_KEY, UntrustedFileError
from samqa_framework.utils.trust import trusting
from tests.track.test_detector import detector
from tests.utils.helpers_untrusted import write_malicious_checkpoint

EVIL_ACT = "__import__('pathlib').Path('MARKER').touch() or nn.SiLU()"


@pytest.fixture(scope="module")
def yolo_weights(yolo_set: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt (or last.pt) of a real, short ultralytics training, as the study's detector stage writes it."""
    return detector(iterations=5, epochs=99).train(yolo_set, tmp_path_factory.mktemp("runs") / "yolo").weights


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # EVIL_ACT's relative MARKER lands here
    return tmp_path


def _frames(tiny_rats: Path):
    return DatasetManifest.read(tiny_rats).sequences(tiny_rats, "eval")[1].frames()


def _evil_weights(weights: Path, path: Path, marker: Path) -> Path:
    """Our real checkpoint with a payload added: it looks and loads like a YOLO .pt when unpickled in full."""
    with safe_ultralytics(weights):
        ckpt, _ = yolo_tasks.torch_safe_load(str(weights))
    return write_malicious_checkpoint(path, marker, payload=ckpt, key="license")


def _evil_yaml(path: Path, **changes: object) -> Path:
    arch = yaml.safe_load((YOLO_ROOT / "cfg" / "models" / "v8" / "yolov8.yaml").read_text())
    arch.update(changes)
    path.write_text(yaml.safe_dump(arch))
    return path


# ------------------------------------------------------------------------------------------------ yaml


def test_ultralytics_own_architectures_pass_the_check() -> None:
    files = sorted((YOLO_ROOT / "cfg" / "models").rglob("*.yaml"))
    assert len(files) > 20
    for file in files:
        check_architecture(yaml_model_load(file), file)


def test_a_yaml_whose_activation_runs_code_is_refused_before_ultralytics_parses_it(in_tmp: Path,
                                                                                    yolo_set: Path) -> None:
    evil = _evil_yaml(in_tmp / "evil.yaml", activation=EVIL_ACT)
    with pytest.raises(UntrustedFileError, match=rf"evil\.yaml: activation .*__import__.*{TRUST_KEY}=true"):
        detector(model=str(evil)).train(yolo_set, in_tmp / "run")
    assert not (in_tmp / "MARKER").exists() and not (in_tmp / "run").exists()


@pytest.mark.parametrize("act,ok", [("nn.SiLU()", True), ("torch.nn.ReLU()", True), ("nn.LeakyReLU(0.1)", True),
                                    ("nn.LeakyReLU(negative_slope=0.1, inplace=True)", True),
                                    ("nn.Softmax2d()", False), ("nn.SiLU", False), ("os.system('x')", False),
                                    ("nn.ReLU(__import__('os'))", False), ("nn.Sequential(nn.ReLU())", False)])
def test_activations_are_a_fixed_set_with_literal_arguments(tmp_path: Path, act: str, ok: bool) -> None:
    arch = yaml_model_load(_evil_yaml(tmp_path / "a.yaml", activation=act))
    if ok:
        check_architecture(arch, "a.yaml")
    else:
        with pytest.raises(UntrustedFileError, match=r"a\.yaml: activation"):
            check_architecture(arch, "a.yaml")


def test_a_layer_outside_ultralytics_and_torch_is_refused(tmp_path: Path) -> None:
    arch = yaml_model_load(_evil_yaml(tmp_path / "a.yaml"))
    arch["head"][1][2] = "__builtins__"  # parse_model would look it up in its module's globals
    with pytest.raises(UntrustedFileError, match=r"a\.yaml: head\[1\]: module '__builtins__' is not a layer"):
        check_architecture(arch, "a.yaml")


def test_trusted_the_architecture_is_left_to_ultralytics(trust_log: pytest.LogCaptureFixture) -> None:
    with trusting(True):
        check_architecture({"activation": EVIL_ACT}, "evil.yaml")  # nothing evaluated here; ultralytics would
    assert "evil.yaml" in trust_log.text and TRUST_KEY in trust_log.text


# ------------------------------------------------------------------------------------------------- .pt


def test_our_trained_weights_load_weights_only(yolo_weights: Path, yolo_set: Path, tmp_path: Path,
                                               tiny_rats: Path) -> None:
    before = list(torch.serialization.get_safe_globals())
    assert list(detector(conf=0.0, max_det=5).detect(yolo_weights, _frames(tiny_rats)))
    # training from our .pt: ultralytics rebuilds the model from the yaml inside it, without eval
    run = detector(model=str(yolo_weights), iterations=1, epochs=1).train(yolo_set, tmp_path / "again")
    assert run.weights.is_file()
    # ultralytics' allow-list of the classes it loaded stays inside the block; its switches are put back
    assert torch.serialization.get_safe_globals() == before
    assert yolo_tasks.SAFE_LOAD is False and SAFE_LOAD_ENV not in os.environ


def test_a_pt_that_runs_code_is_refused_for_detection_and_training(yolo_weights: Path, yolo_set: Path,
                                                                   tiny_rats: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = _evil_weights(yolo_weights, tmp_path / "evil.pt", marker)
    pattern = rf"evil\.pt: cannot be loaded as an ultralytics checkpoint.*exec.*{TRUST_KEY}=true"
    with pytest.raises(UntrustedFileError, match=pattern):
        next(detector().detect(evil, _frames(tiny_rats)))
    with pytest.raises(UntrustedFileError, match=pattern):
        detector(model=str(evil)).train(yolo_set, tmp_path / "from_evil")
    with pytest.raises(UntrustedFileError, match=pattern):  # any other way in: ultralytics' own `pretrained`
        detector(extra={"pretrained": str(evil)}).train(yolo_set, tmp_path / "pretrained_evil")
    assert not marker.exists()
    with trusting(True):  # the user's explicit choice: ultralytics unpickles it in full, its code runs
        assert list(detector(conf=0.0, max_det=5).detect(evil, _frames(tiny_rats)))
    assert marker.exists()
