"""data/identity.py: a data set's identity follows its contents, not its paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from samqa_framework.data import identity
from samqa_framework.data.identity import dataset_identity, file_identity, sequence_identity
from samqa_framework.data.sequence import DatasetManifest, Sequence


def _first_train(root: Path) -> Sequence:
    return DatasetManifest.read(root).sequences(root, "train")[0]


def test_a_copy_keeps_the_identity_and_an_edited_gt_changes_it(tiny_rats: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_rats, copy)
    manifest = DatasetManifest.read(tiny_rats)
    assert sequence_identity(_first_train(copy)) == sequence_identity(_first_train(tiny_rats))
    before = dataset_identity(manifest, copy, ["train"])
    assert before == dataset_identity(manifest, tiny_rats, ["train"])
    gt = _first_train(copy).gt_path
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([lines[0].replace(",1,", ",2,", 1), *lines[1:]]) + "\n")  # one identity changed
    assert dataset_identity(manifest, copy, ["train"]) != before
    assert dataset_identity(manifest, copy, ["eval"]) == dataset_identity(manifest, tiny_rats, ["eval"])


def test_a_large_file_is_identified_by_its_size_and_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "FULL_HASH_BYTES", 1 << 20)
    monkeypatch.setattr(identity, "_EDGE", 1 << 10)
    data = bytearray(b"x" * (2 << 20))
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    base = file_identity(path)
    data[-1] = ord("y")  # the end (a container's index)
    path.write_bytes(data)
    assert file_identity(path) != base
    data[-1] = ord("x")
    data[1 << 20] = ord("z")  # the middle of a large file is not read: a documented limit
    path.write_bytes(data)
    assert file_identity(path) == base
    path.write_bytes(bytes(data) + b"x")
    assert file_identity(path) != base
