"""samqa_framework.training: the train config's stages and recipes, fit -> export end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from samqa_framework.models.sam.checkpoints import load_checkpoint, read_export_meta
from samqa_framework.training import objective, train
from samqa_framework.utils.errors import TRUST_KEY, UntrustedFileError
from samqa_framework.utils.safe_torch import check_torch_file
from tests.utils.helpers_untrusted import write_malicious_checkpoint

TINY = ["data.size=tiny", "model.image_size=64", "logger=csv", "callbacks=none"]


@pytest.mark.parametrize("stage,target,monitor", [
    ("finetune", "FinetuneModule", "val/iou"),
    ("distill", "DistillModule", "val/mse"),
])
def test_train_config_composes_with_each_stage(compose_cfg, tmp_path: Path, stage: str, target: str,
                                               monitor: str) -> None:
    cfg = compose_cfg("train", [f"stage={stage}", "model.image_size=128"])
    assert cfg.stage.name == stage and cfg.stage.module._target_.endswith(target)
    assert cfg.callbacks.model_checkpoint.monitor == monitor  # the stage overrides the callback group
    assert cfg.callbacks.model_checkpoint._target_.endswith("ModelCheckpoint")
    assert cfg.stage.datamodule.image_size == 128 and cfg.stage.datamodule.root == cfg.paths.dataset_dir
    assert cfg.export_path.endswith(f"sam_{stage}.pt")
    assert cfg.trainer.gradient_clip_val == 1.0
    if stage == "distill":
        assert cfg.stage.module.teacher.encoder.variant == "vit_b"
        assert cfg.stage.module.teacher.encoder.img_size == 128
    resolved = OmegaConf.to_container(cfg.stage, resolve=True)  # every interpolation resolves
    assert resolved["callbacks"]["timeline"]["path"].startswith(str(tmp_path))


@pytest.mark.parametrize("recipe,species,size,steps", [
    ("quick_finetune_rats", "synthetic_rats", 320, 820),
    ("quick_finetune_mice", "synthetic_mice", 320, 820)])
def test_quick_finetune_recipes(compose_cfg, recipe: str, species: str, size: int, steps: int) -> None:
    cfg = compose_cfg("train", [f"recipe={recipe}"])
    assert cfg.data.name == species and cfg.data.size == "quick" and cfg.stage.name == "finetune"
    # a step budget, never wall-clock time: the same config gives the same student on any machine load
    assert cfg.trainer.max_steps == steps and cfg.trainer.get("max_time") is None
    assert cfg.model.image_size == size
    dm = instantiate(cfg.stage.datamodule)
    assert dm.image_size == size


def test_quick_distill_stage_extends_distill(compose_cfg) -> None:
    cfg = compose_cfg("train", ["stage=distill_quick"])
    assert cfg.stage.name == "distill" and cfg.stage.module._target_.endswith("DistillModule")
    assert cfg.stage.datamodule.every == 10 and cfg.trainer.max_epochs == 2
    assert cfg.callbacks.model_checkpoint.monitor == "val/mse"


@pytest.mark.parametrize("stage", ["finetune", "distill", "segmentation"])
def test_every_stage_trains_with_deterministic_kernels(compose_cfg, stage: str) -> None:
    # Measured: without them two 2-thread runs of one config differ after ~20 finetune steps (the backward of
    # TinyViT's attention_biases[:, idxs] accumulates in thread order), so Table 2 moved with the machine's load.
    cfg = compose_cfg("train", [f"stage={stage}"])
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        instantiate(cfg.trainer, default_root_dir=None, logger=False)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_train_user_override_beats_the_stage(compose_cfg) -> None:
    cfg = compose_cfg("train", ["trainer.max_epochs=3", "callbacks.model_checkpoint.monitor=train/loss"])
    assert cfg.trainer.max_epochs == 3 and cfg.callbacks.model_checkpoint.monitor == "train/loss"


def test_finetune_end_to_end_exports_a_loadable_sam(compose_cfg, tmp_path: Path, capsys) -> None:
    cfg = compose_cfg("train", [*TINY, f"paths.dataset_dir={tmp_path}/data", "trainer.max_epochs=1",
                                "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2",
                                "stage.datamodule.batch_size=2", "stage.datamodule.every=5"])
    out = train(cfg)
    export = Path(out["export"])
    assert export == Path(cfg.export_path) and export.is_file()
    assert set(out["metrics"]) == {"val/iou", "val/box_iou", "val/iou_p10"}
    assert 0 <= out["metrics"]["val/iou"] <= 1 and out["metrics"]["val/box_iou"] > 0.4
    meta = read_export_meta(export)
    assert meta["meta"]["stage"] == "finetune" and meta["meta"]["global_step"] == 2
    fresh = instantiate(cfg.model)
    load_checkpoint(fresh, export)
    trained = out["module"].sam.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == f"model: {export}" and "val/iou" in printed[-2]
    rows = (Path(cfg.paths.output_dir) / "timeline.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,minutes,train_minutes,final,val/iou") and rows[-1].split(",")[4] == "True"
    assert (Path(cfg.paths.output_dir) / "overlays" / "val_overlay_0.png").is_file()
    assert objective(cfg, out) == out["metrics"]["val/iou"]  # what samqa-train returns to a sweeper
    ckpt = next(Path(cfg.paths.output_dir).rglob("*.ckpt"))  # Lightning's own checkpoint of this run
    assert check_torch_file(ckpt) is True  # plain weights: resumed weights only, nothing to allow-list
    load_checkpoint(instantiate(cfg.model), ckpt)  # and the SAM loader reads it the same way


def test_objective_is_the_stages_first_summary_metric_or_nan(compose_cfg) -> None:
    cfg = compose_cfg("train", ["stage=distill"])
    assert cfg.stage.summary_metrics[0] == "val/mse"
    assert objective(cfg, {"metrics": {"val/mse": 0.25, "val/other": 9.0}}) == 0.25
    assert math.isnan(objective(cfg, {"metrics": {}}))  # e.g. fast_dev_run: no validation metric


def test_resume_from_a_checkpoint_that_runs_code_is_refused(compose_cfg, tiny_rats: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = write_malicious_checkpoint(tmp_path / "last.ckpt", marker, key="hyper_parameters",
                                      payload={"state_dict": {}, "epoch": 0, "global_step": 0})
    cfg = compose_cfg("train", [*TINY, f"paths.dataset_dir={tiny_rats}", f"ckpt_path={evil}"])
    with pytest.raises(UntrustedFileError, match=rf"last\.ckpt: .*builtins\.exec.*{TRUST_KEY}=true"):
        train(cfg)
    assert not marker.exists()


@pytest.mark.slow
def test_resume_from_ckpt_path_continues_the_run(compose_cfg, tmp_path: Path) -> None:
    common = [*TINY, f"paths.dataset_dir={tmp_path}/data", "+trainer.limit_val_batches=1", "stage.datamodule.every=10",
              "stage.datamodule.batch_size=2", "final_validate=false", "+callbacks.last._target_="
              "lightning.pytorch.callbacks.ModelCheckpoint", f"+callbacks.last.dirpath={tmp_path}/ckpt",
              "+callbacks.last.save_last=true"]
    first = train(compose_cfg("train", [*common, "trainer.max_epochs=1"]))
    assert first["trainer"].global_step == 2  # 4 frames, batch 2
    second = train(compose_cfg("train", [*common, "trainer.max_epochs=2", f"ckpt_path={tmp_path}/ckpt/last.ckpt",
                                         f"hydra.run.dir={tmp_path}/run2"]))
    assert second["trainer"].global_step == 4 and second["trainer"].current_epoch == 2


def test_distill_stage_runs_from_the_cli_config(compose_cfg, tmp_path: Path) -> None:
    teacher = "stage.module.teacher.encoder"
    cfg = compose_cfg("train", [*TINY, "stage=distill", f"paths.dataset_dir={tmp_path}/data",
                                "+trainer.fast_dev_run=true",
                                f"stage.module.cache_dir={tmp_path}/cache",
                                f"{teacher}._target_=samqa_framework.models.sam.encoders.TimmEncoder",
                                f"~{teacher}.variant", f"+{teacher}.model_name=tiny_vit_5m_224"])
    out = train(cfg)
    assert Path(out["export"]).name == "sam_distill.pt" and Path(out["export"]).is_file()
    assert list((tmp_path / "cache").glob("teacher-*.f16"))
    assert out["module"].teacher_calls >= 1


def test_both_stages_train_on_an_import_of_a_few_labelled_boxes(compose_cfg, tiny_rats: Path, tmp_path: Path) -> None:
    """A MOTChallenge import whose labels are boxes on every 4th frame, no masks (before box supervision: "fine-tuning
    needs instance masks (gt/masks.jsonl)"): the SAM student and a U-Net train on those frames' boxes."""
    from tests.conftest import boxes_only

    source = boxes_only(tiny_rats, tmp_path / "source", frames=lambda f: f % 4 == 1)
    common = ["data=motchallenge", f"data.source={source}", "data.train=[synthetic_rats-train]", "logger=csv",
              "callbacks=none", f"paths.dataset_dir={tmp_path}/imported", "trainer.max_epochs=1",
              "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "stage.datamodule.batch_size=2",
              "final_validate=false"]  # the training metrics stay in the trainer's callback_metrics
    out = train(compose_cfg("train", [*common, "model.image_size=64"]))
    metrics = out["trainer"].callback_metrics
    assert out["trainer"].global_step == 2 and math.isfinite(float(metrics["train/loss"]))
    assert {"train/projection", "train/pairwise"} <= set(metrics) and "train/bce" not in metrics
    # no GT mask to validate on: the box fit stands in for val/iou (the monitor and the objective)
    assert set(out["metrics"]) == {"val/iou", "val/iou_p10"} and Path(out["export"]).is_file()
    assert out["metrics"]["val/iou"] == pytest.approx(float(metrics["val/pred_box_iou"]))
    assert out["trainer"].datamodule.train_set.refs == [(0, f) for f in range(0, 40, 4)]  # the labelled frames

    out = train(compose_cfg("train", [*common, "stage=segmentation", "stage.image_size=64",
                                      "+model.encoder_depth=3", "+model.decoder_channels=[32,16,8]",
                                      f"hydra.run.dir={tmp_path}/run_seg"]))
    metrics = out["trainer"].callback_metrics
    assert out["trainer"].global_step == 2 and math.isfinite(float(metrics["train/loss"]))
    assert {"train/projection", "train/pairwise"} <= set(metrics) and "train/ce" not in metrics
    assert set(out["metrics"]) == {"val/iou"} and Path(out["export"]).is_file()
    assert [f for _, f in out["trainer"].datamodule.train_set.refs] == list(range(0, 40, 4))
