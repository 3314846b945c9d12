from __future__ import annotations

import json
from pathlib import Path

import pytest

from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.data.synthetic import builder as builder_mod
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.hydra import instantiate_node


def _builder(compose_cfg, *overrides: str):
    cfg = compose_cfg("generate", ["data.size=tiny", *overrides])
    return instantiate_node(cfg, "data", _convert_="all")


def test_same_seed_same_labels_different_seed_different(compose_cfg, tmp_path: Path) -> None:
    a = _builder(compose_cfg).build(tmp_path / "a")
    _builder(compose_cfg).build(tmp_path / "b")
    _builder(compose_cfg, "data.seed=7").build(tmp_path / "c")
    for name in a.train + a.eval:
        text = {k: (tmp_path / k / name / "gt" / "gt.txt").read_text() for k in "abc"}
        masks = {k: (tmp_path / k / name / "gt" / "masks.jsonl").read_text() for k in "ab"}
        assert text["a"] == text["b"] and masks["a"] == masks["b"]
        assert text["a"] != text["c"]


def test_interrupted_build_resumes_and_reuses_finished_sequences(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    b = _builder(compose_cfg)
    tmp_path = tmp_path / "dataset"
    calls: list[str] = []
    crashed: list[bool] = []
    real = builder_mod.SyntheticDatasetBuilder._render_sequence

    def crash_on_second(self, folder, seq, index, frames):
        calls.append(seq)
        if len(calls) == 2 and not crashed:
            crashed.append(True)
            raise MemoryError("simulated crash in the middle of the second sequence")
        return real(self, folder, seq, index, frames)

    monkeypatch.setattr(builder_mod.SyntheticDatasetBuilder, "_render_sequence", crash_on_second)
    with pytest.raises(MemoryError):
        b.build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic_rats-train"]  # no half sequence, no tmp
    calls.clear()
    manifest = b.build(tmp_path)
    assert calls == ["synthetic_rats-eval1", "synthetic_rats-eval2"]  # the finished one was reused
    assert manifest == DatasetManifest.read(tmp_path)
    record = json.loads((tmp_path / "synthetic_rats-train" / "build.json").read_text())
    assert record["frames"] == 40 and len(record["config_hash"]) == 16
    calls.clear()
    b.min_visibility = 0.5
    b.build(tmp_path)  # a changed config rebuilds all
    assert len(calls) == 3


def test_a_folder_of_the_users_is_never_built_over(compose_cfg, tmp_path: Path) -> None:
    mine = tmp_path / "synthetic_rats-eval1"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    with pytest.raises(DataFormatError, match=r"synthetic_rats-eval1: exists but was not rendered here.*out_dir"):
        _builder(compose_cfg).build(tmp_path)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "my notes\n"


def test_img1_layout(compose_cfg, tmp_path: Path) -> None:
    manifest = _builder(compose_cfg, "data.video_format=img1").build(tmp_path)
    seq = Sequence(tmp_path / manifest.eval[0])
    assert len(list((seq.root / "img1").glob("*.jpg"))) == 20 and not (seq.root / "video.mp4").exists()
    frames = seq.frames()
    assert len(frames) == 20 and frames.read(19).shape == (120, 160, 3)


@pytest.mark.parametrize("override,key", [("data.size=huge", "data.size"),
                                          ("data.video_format=avi", "data.video_format"),
                                          ("data.num_animals=0", "data.num_animals"),
                                          ("data.name=../../x", "data.name")])  # its sequences' folders
def test_bad_config_names_key(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _builder(compose_cfg, override)
    assert info.value.key == key
