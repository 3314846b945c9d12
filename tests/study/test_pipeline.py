from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from samqa_framework.annotate.manual import ManualAnnotator
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.data.mot import read_mot, write_mot
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.study.cache import StageResult
from samqa_framework.study.pipeline import StudyJob, _over_seeds, method_info, study_job


@pytest.mark.parametrize("annotator,label,interval,post", [
    ("manual", "Manual annotation", None, "-"),
    ("samqa", "SAM-QA", None, "-"),
    ("sam2_video", "SAM 2 video", 15, "-"),
    ("sam2_video_30", "SAM 2 video", 30, "-"),
    ("watershed_unet", "U-Net", None, "GMM"),
    ("watershed_dinov2", "DINOv2", None, "K-Means"),
    ("watershed_unet_manual", "U-Net + manual", 15, "GMM"),
    ("grounding_dino_manual", "Grounding DINO + manual", 15, "-"),
])
def test_table2_columns_come_from_the_methods_table_and_the_annotator(compose_cfg, annotator, label, interval,
                                                                      post) -> None:
    info = method_info(compose_cfg("study", [f"annotator={annotator}"]))
    assert (info["label"], info["prompt_interval"], info["post_processing"]) == (label, interval, post)
    assert info["annotator"] == annotator


def test_manual_every_n_is_a_prompt_interval(compose_cfg) -> None:
    assert method_info(compose_cfg("study", ["annotator=manual", "annotator.every=15"]))["prompt_interval"] == 15


@pytest.mark.parametrize("annotator,key", [("grounding_dino", "annotator.model_dir"),
                                          ("sam2_video", "annotator.sam2.checkpoint"),
                                          ("watershed_dinov2", "dinov2_dir")])
def test_a_method_without_its_checkpoint_is_skipped_naming_the_key(compose_cfg, tmp_path: Path, annotator,
                                                                    key) -> None:
    cfg = compose_cfg("study", [f"annotator={annotator}", "logger=csv", f"study.cache_dir={tmp_path}/cache"])
    row = study_job(cfg)
    assert row["status"] == "skipped" and key in row["reason"] and row["stages"] == {}
    written = json.loads((Path(cfg.paths.output_dir) / "row.json").read_text())
    assert written["status"] == "skipped" and written["reason"] == row["reason"]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing was trained


def test_a_failing_job_is_recorded_and_raises_only_when_asked(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("study", ["annotator=manual", "logger=csv", "tracker.track_low_thresh=0.7",
                                f"study.cache_dir={tmp_path}/cache"])
    row = study_job(cfg)
    assert row["status"] == "failed" and "tracker.track_low_thresh" in row["reason"]
    with open_dict(cfg):
        cfg.study.continue_on_error = False
    with pytest.raises(Exception, match="track_low_thresh"):
        study_job(cfg)


def test_an_unknown_tracker_key_fails_before_any_stage(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("study", ["annotator=manual", "logger=csv", "+tracker.trak_buffer=3",
                                f"study.cache_dir={tmp_path}/cache"])
    row = study_job(cfg)
    assert row["status"] == "failed" and "tracker.trak_buffer" in row["reason"] and "unknown key" in row["reason"]
    assert row["stages"] == {}


@pytest.mark.parametrize("experiment", [None, "quick_all", "study_smoke", "paper_rats", "paper_mice", "sleap_clip",
                                        "sleap_clip_samqa"])
def test_every_model_spec_composes_as_a_samqa_train_config(compose_cfg, experiment) -> None:
    """study.models holds samqa-train overrides: each must compose (a typo would only show after earlier jobs)."""
    cfg = compose_cfg("study", [f"experiment={experiment}"] if experiment else [])
    assert cfg.study.models
    job = StudyJob(cfg)
    for name, spec in cfg.study.models.items():
        train_cfg = job.train_config(spec, {})
        assert train_cfg.stage.name in ("finetune", "distill", "segmentation"), name
        assert train_cfg.data == cfg.data and train_cfg.paths.output_dir == "<stage_dir>"


def test_a_model_config_is_explicit_and_the_job_config_stays_as_composed(compose_cfg) -> None:
    """The study hands samqa-train's function a config of its own, and the trained model's path goes to a copy of
    the annotator config: nothing is written into the job's config."""
    cfg = compose_cfg("study", ["annotator=samqa", "model.image_size=64"])
    before = OmegaConf.to_container(cfg, resolve=False)
    job = StudyJob(cfg)
    train_cfg = job.train_config(cfg.study.models.sam_finetune, {"model.checkpoint": "/models/distilled.pt"})
    assert train_cfg.model.checkpoint == "/models/distilled.pt" and train_cfg.model.image_size == 64  # inherited
    assert train_cfg.task_name == "train" and train_cfg.logger.csv.save_dir == "<stage_dir>"
    annotator = job.annotator_config({"model.checkpoint": "/models/finetuned.pt"})
    assert OmegaConf.to_container(annotator, resolve=True)["predictor"]["sam"]["checkpoint"] == "/models/finetuned.pt"
    assert OmegaConf.to_container(cfg, resolve=False) == before


def test_export_keeps_labels_whatever_their_score(tiny_rats: Path, tmp_path: Path, compose_cfg) -> None:
    """A label's conf column is the method's score (SAM's IoU head can give negative ones), not a gt flag."""
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
    root = annotate_sequence(ManualAnnotator(5), seq, tmp_path / "labels", progress=False).out_dir
    boxes = read_mot(root / "labels.txt")
    boxes.conf[:] = -0.3
    write_mot(root / "labels.txt", boxes)
    cfg = compose_cfg("study", ["annotator=manual", f"study.cache_dir={tmp_path}/cache", "study.val_every=2"])
    annotation = StageResult("annotate", "k", root, {"sequences": {seq.name: {"labels_dir": str(root)}}}, 0.0, False)
    manifest = DatasetManifest.read(seq.root.parent)
    out = StudyJob(cfg).export(annotation, manifest, seq.root.parent)
    assert out.outputs["boxes"] == len(boxes) and out.outputs["images"] == 8
    exported = [line for p in (out.dir / "labels" / "train").glob("*.txt") for line in p.read_text().splitlines()]
    assert len(exported) == len(boxes)  # every label became a YOLO box: none was dropped
    assert len(list((out.dir / "labels" / "val").glob("*.txt"))) == 4


def test_metrics_over_detector_seeds_give_mean_sd_and_each_seed() -> None:
    def run(idf1: float, why: str | None) -> dict:
        return {"IDF1": idf1, "HOTA": idf1 / 2, "IDSW": 3, "diagnosis": {"why": why}}

    agg = _over_seeds({0: {"paper": run(80.0, None)}, 1: {"paper": run(84.0, None)},
                       2: {"paper": run(0.0, "no track started")}})["paper"]
    assert agg["IDF1"] == pytest.approx(164 / 3) and agg["HOTA"] == pytest.approx(82 / 3)
    assert agg["IDF1_sd"] == pytest.approx(float(np.std([80, 84, 0], ddof=1)))
    assert agg["IDF1_per_seed"] == {"0": 80.0, "1": 84.0, "2": 0.0} and agg["IDSW"] == 3
    assert agg["diagnosis"]["why"] == "seed 2: no track started"
    one = _over_seeds({0: {"paper": run(80.0, None)}})["paper"]
    assert one["IDF1"] == 80.0 and one["IDF1_sd"] is None and one["diagnosis"] == {"why": None}


def test_the_frame_cache_folder_is_not_in_a_trained_models_key(compose_cfg) -> None:
    """Decoded frames are cached where paths.frame_cache_dir says, or not at all: the same frames, the same model, so
    neither the folder nor turning it off changes a model stage's key (nor do the keys of earlier stages change)."""
    cfg = compose_cfg("study", ["experiment=quick_all"])
    job = StudyJob(cfg)
    ignore = list(cfg.study.train_cache_ignore)
    for name, spec in cfg.study.models.items():
        train_cfg = job.train_config(spec, {})
        assert train_cfg.stage.datamodule.frame_cache_dir == cfg.paths.frame_cache_dir, name  # on, in the study's
        key = job.keyed(train_cfg, "", ignore)
        assert "frame_cache_dir" not in json.dumps(key), name
        off = train_cfg.copy()
        off.stage.datamodule.frame_cache_dir = None
        assert job.keyed(off, "", ignore) == key, name
        with open_dict(off):  # the key of a config from before the option: the same
            del off.stage.datamodule.frame_cache_dir
        assert job.keyed(off, "", ignore) == key, name
