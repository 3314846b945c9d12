"""The detector tests' label set: the tiny rat videos exported as a YOLO data set (one per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.data.yolo_export import export_yolo, write_data_yaml


@pytest.fixture(scope="session")
def yolo_set(tiny_rats: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = DatasetManifest.read(tiny_rats)
    train, val = manifest.sequences(tiny_rats, "train"), manifest.sequences(tiny_rats, "eval")[:1]
    out = tmp_path_factory.mktemp("yolo")
    export_yolo([(s.name, s.frames(), s.gt()) for s in train], out, "train")
    export_yolo([(s.name, s.frames(), s.gt()) for s in val], out, "val", every=2)
    return write_data_yaml(out, {"train": "train", "val": "val"}, ["animal"])
