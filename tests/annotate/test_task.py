"""The annotate task's objective: what samqa-annotate returns to a sweeper."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from samqa_framework import api
from samqa_framework.annotate.runner import AnnotationResult
from samqa_framework.annotate.task import objective, objective_keys
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.errors import ConfigError, DataFormatError


def _result(quality: dict | None) -> AnnotationResult:
    return AnnotationResult(Path("x"), Path("x/labels.txt"), Path("x/masks.jsonl"), 10, {}, quality)


def test_the_default_objective_is_the_mean_box_iou_over_sequences(compose_cfg) -> None:
    cfg = compose_cfg("annotate")
    assert objective_keys(cfg) == ["mean_box_iou"]
    results = [_result({"mean_box_iou": 0.9, "interventions_per_100_frames": 1.0}), _result(None),
               _result({"mean_box_iou": 0.7, "interventions_per_100_frames": 3.0})]
    assert objective(cfg, results) == pytest.approx(0.8)


def test_several_figures_give_a_list_for_a_multi_objective_sweep() -> None:
    cfg = OmegaConf.create({"objective": ["mean_box_iou", "interventions_per_100_frames"]})
    out = objective(cfg, [_result({"mean_box_iou": 0.9, "interventions_per_100_frames": 1.0}),
                          _result({"mean_box_iou": 0.7, "interventions_per_100_frames": 3.0})])
    assert out == pytest.approx([0.8, 2.0])
    assert objective(OmegaConf.create({"objective": "recall"}), [_result({"recall": 0.5})]) == 0.5
    assert math.isnan(objective(cfg, [_result(None)])[0])  # no ground truth: no figure


@pytest.mark.parametrize("value", [["mean_box_io"], []])
def test_an_unknown_figure_is_refused_by_name(compose_cfg, value) -> None:
    with pytest.raises(ConfigError, match=r"config key 'objective'.*mean_box_iou"):
        objective_keys(OmegaConf.create({"objective": value}))


def _annotate_cfg(compose_cfg, data: Path, out: Path, *overrides: str):
    return compose_cfg("annotate", [f"paths.dataset_dir={data}", "data.size=tiny", "annotator=manual", "logger=csv",
                                    f"out_dir={out}", "max_frames=2", *overrides])


def test_a_sequence_that_is_a_path_is_refused_by_key(compose_cfg, tiny_rats: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config key 'sequences': sequence name '\.\./\.\./x'"):
        api.annotate(_annotate_cfg(compose_cfg, tiny_rats, tmp_path / "run" / "labels", "sequences=[../../x]"))


def test_a_sequence_named_by_its_data_as_a_path_writes_nothing(compose_cfg, tiny_rats: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_rats, data)
    train = DatasetManifest.read(data).train[0]
    ini = data / train / "seqinfo.ini"
    ini.write_text(ini.read_text().replace(f"name={train}", "name=../../escaped"))
    out = tmp_path / "run" / "labels"
    with pytest.raises(DataFormatError, match=r"sequence name '\.\./\.\./escaped'") as err:
        api.annotate(_annotate_cfg(compose_cfg, data, out))
    assert err.value.path == str(ini) and err.value.line == 2
    assert not (out.parent.parent / "escaped").exists() and not out.exists()


def test_labels_of_other_data_are_not_resumed_into(compose_cfg, tiny_rats: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_rats, data)
    out = tmp_path / "run" / "labels"
    api.annotate(_annotate_cfg(compose_cfg, data, out))
    api.annotate(_annotate_cfg(compose_cfg, data, out, "max_frames=3"))  # the same data: resumed
    train = DatasetManifest.read(data).train[0]
    gt = data / train / "gt" / "gt.txt"
    gt.write_text(gt.read_text().replace("\n", "\n", 1).replace("1,1,", "1,9,", 1))  # another data set in place
    with pytest.raises(DataFormatError, match=r"store.json.*differs in input"):
        api.annotate(_annotate_cfg(compose_cfg, data, out, "max_frames=4"))
    assert len((out / train / "labels.jsonl").read_text().splitlines()) == 3  # nothing mixed in


@pytest.mark.parametrize(("override", "key"), [("max_frames=-5", "max_frames"), ("max_frames=0", "max_frames"),
                                                ("max_frames=2.5", "max_frames")])
def test_a_frame_limit_out_of_range_names_its_key(compose_cfg, tiny_rats: Path, tmp_path: Path, override: str,
                                                  key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config key '{key}': must be an integer >= 1"):
        api.annotate(_annotate_cfg(compose_cfg, tiny_rats, tmp_path / "labels", override))
