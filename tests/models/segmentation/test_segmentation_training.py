"""The segmentation stage: data module, Lightning module and `samqa-train stage=segmentation` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import Trainer

from samqa_framework.data import rle
from samqa_framework.data.segmentation_datamodule import SegmentationDataModule, evenly_spaced
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.models.lit.common import TrainingDivergedError
from samqa_framework.models.lit.segmentation import SegmentationModule
from samqa_framework.models.losses import ce_dice_loss, dice_loss
from samqa_framework.models.segmentation.dinov2_linear import Dinov2LinearHead
from samqa_framework.models.segmentation.predictor import SegmentationPredictor
from samqa_framework.training import train
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import instantiate_node
from tests.models.helpers_training import NanAt

SIZE = 64
TINY_UNET = {"_target_": "segmentation_models_pytorch.Unet", "encoder_name": "resnet18", "encoder_weights": None,
             "encoder_depth": 3, "decoder_channels": [32, 16, 8], "classes": 2}


def datamodule(root: Path, **kw) -> SegmentationDataModule:
    return SegmentationDataModule(str(root), **{"image_size": SIZE, "num_labelled": 8, "val_every": 10,
                                                "batch_size": 4, **kw})


def trainer(**kw) -> Trainer:
    args = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    return Trainer(**{**args, **kw})


def test_evenly_spaced_frames() -> None:
    assert evenly_spaced(40, 5) == [0, 10, 20, 29, 39]
    assert evenly_spaced(1000, 112)[:3] == [0, 9, 18] and len(evenly_spaced(1000, 112)) == 112
    assert evenly_spaced(3, 112) == [0, 1, 2] and evenly_spaced(10, 1) == [0] and evenly_spaced(0, 4) == []


def test_ce_dice_loss_is_small_for_right_logits_and_matches_binary_dice() -> None:
    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[:, 2:6, 3:7] = 1
    right = torch.stack([-(mask * 2 - 1), mask * 2 - 1], 1).float() * 10
    total, parts = ce_dice_loss(right, mask)
    assert total < 1e-3 and set(parts) == {"ce", "dice"}
    assert ce_dice_loss(-right, mask)[0] > 10
    logits = torch.randn(2, 2, 8, 8)
    _, parts = ce_dice_loss(logits, mask)
    assert torch.allclose(parts["dice"], dice_loss(logits[:, 1] - logits[:, 0], mask.float()), atol=1e-6)


def test_targets_are_the_union_of_the_instance_masks(tiny_rats: Path) -> None:
    dm = datamodule(tiny_rats)
    dm.setup("fit")
    assert [f for _, f in dm.train_set.refs] == evenly_spaced(40, 8)
    assert len(dm.val_set) == 4  # 2 evaluation sequences x 20 frames, every 10th
    seq_index, frame = dm.val_set.refs[1]
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "eval")[seq_index]
    record = dict(rle.iter_masks(seq.masks_path))[frame + 1]
    union = np.any([rle.decode(r) for r in record.values()], axis=0)
    sample = dm.val_set[1]
    assert torch.equal(sample["mask_orig"], torch.from_numpy(union)) and union.sum() > 100
    assert sample["image"].shape == (3, SIZE, SIZE) and sample["image"].dtype == torch.uint8
    assert sample["mask"].shape == (SIZE, SIZE) and set(sample["mask"].unique().tolist()) == {0, 1}
    share = union.mean()  # resizing keeps the foreground's share of the frame
    assert abs(float(sample["mask"].float().mean()) - share) < 0.02


def test_training_flips_move_image_and_mask_together(tiny_rats: Path) -> None:
    dm = datamodule(tiny_rats)
    dm.setup("fit")
    ds = dm.train_set
    ds.train = False
    plain = ds[3]
    ds.train = True
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        s = ds[3]
        for variant, dims in {"none": [], "h": [-1], "v": [-2], "hv": [-2, -1]}.items():
            if torch.equal(s["image"], plain["image"].flip(dims)) and torch.equal(s["mask"], plain["mask"].flip(dims)):
                seen.add(variant)
                break
        else:
            raise AssertionError("image and mask were not flipped together")
    assert len(seen) >= 3


def test_fast_dev_run_logs_loss_iou_and_dice(tiny_rats: Path) -> None:
    torch.manual_seed(0)
    module = SegmentationModule(instantiate(TINY_UNET), SIZE, optimizer={"lr": 1e-3})
    t = trainer(fast_dev_run=True)
    t.fit(module, datamodule=datamodule(tiny_rats))
    m = t.callback_metrics
    assert np.isfinite(float(m["train/loss"]))
    assert 0.0 <= float(m["val/iou"]) <= float(m["val/dice"]) <= 1.0  # Dice >= IoU always


def test_a_few_steps_on_one_batch_raise_the_iou(tiny_rats: Path) -> None:
    """The module really learns: 30 steps on one batch fit it (loss down, IoU up, as the predictor measures it)."""
    torch.manual_seed(0)
    dm = datamodule(tiny_rats, hflip=False, vflip=False)
    dm.setup("fit")
    batch = dm.val_dataloader().collate_fn([dm.val_set[i] for i in range(4)])
    module = SegmentationModule(instantiate(TINY_UNET), SIZE)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)

    def iou() -> float:
        module.eval()
        with torch.no_grad():
            logits = module(batch["image"])
        module.train()
        pred = torch.nn.functional.interpolate(logits[:, 1:2] - logits[:, :1], size=batch["mask_orig"][0].shape,
                                               mode="bilinear")[:, 0] > 0
        gt = torch.stack(batch["mask_orig"])
        return float((pred & gt).sum() / (pred | gt).sum())

    before = iou()
    losses = []
    for _ in range(30):
        loss, _ = module._loss(module(batch["image"]), batch["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert iou() > max(before, 0.5)




def test_nan_loss_stops_training_naming_step_and_batch(tiny_rats: Path) -> None:
    module = SegmentationModule(instantiate(TINY_UNET), SIZE, optimizer={"lr": 1e-4})
    t = trainer(max_steps=3, limit_val_batches=0, callbacks=[NanAt(1, lambda m: m.net.segmentation_head[0].bias)])
    with pytest.raises(TrainingDivergedError, match=r"global step 1, epoch 0, batch index 1"):
        t.fit(module, datamodule=datamodule(tiny_rats, batch_size=2))


def test_frozen_dinov2_trains_only_its_head(tiny_dinov2: Path, tiny_rats: Path) -> None:
    net = Dinov2LinearHead(tiny_dinov2)
    backbone = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    module = SegmentationModule(net, SIZE, optimizer={"lr": 1e-2})
    opt = module.configure_optimizers()["optimizer"]
    params = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in params} == {id(net.head.weight), id(net.head.bias)}
    head = net.head.weight.clone()
    trainer(max_steps=2, limit_val_batches=0).fit(module, datamodule=datamodule(tiny_rats, batch_size=2))
    assert not torch.equal(net.head.weight, head)
    assert all(torch.equal(v, backbone[k]) for k, v in net.backbone.state_dict().items())
    with pytest.raises(ConfigError, match=r"'image_size'.*multiples of 8"):  # under the stage: stage.image_size
        SegmentationModule(net, 60)


@pytest.mark.parametrize("model", ["unet", "deeplabv3", "dinov2_linear"])
def test_train_stage_segmentation_exports_a_loadable_net(compose_cfg, tmp_path: Path, tiny_rats: Path,
                                                         tiny_dinov2: Path, model: str, capsys) -> None:
    overrides = ["stage=segmentation", f"model={model}", "data.size=tiny", "logger=csv", "callbacks=none",
                 f"paths.dataset_dir={tiny_rats}", f"stage.image_size={SIZE}", "trainer.max_epochs=1",
                 "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "stage.datamodule.batch_size=2",
                 "stage.datamodule.num_labelled=6"]
    if model == "dinov2_linear":
        overrides.append(f"model.backbone_path={tiny_dinov2}")
    elif model == "unet":  # the config's resnet18 nets, made lighter for a CPU test
        overrides += ["+model.encoder_depth=3", "+model.decoder_channels=[32,16,8]"]
    else:
        overrides.append("+model.decoder_channels=32")
    cfg = compose_cfg("train", overrides)
    assert cfg.stage.module._target_.endswith("SegmentationModule")
    assert cfg.callbacks.model_checkpoint.monitor == "val/iou"
    out = train(cfg)
    export = Path(out["export"])
    assert export.name == f"seg_{model}.pt" and export.is_file()
    assert set(out["metrics"]) == {"val/iou", "val/dice"}
    side = json.loads(Path(f"{export}.json").read_text())
    assert side["image_size"] == [SIZE, SIZE] and side["meta"]["stage"] == "segmentation"
    assert side["meta"]["global_step"] == 2
    predictor = SegmentationPredictor.load(export)
    trained = out["module"].net.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in predictor.net.state_dict().items())
    frame = np.zeros((120, 160, 3), np.uint8)
    assert predictor.heatmap(frame).shape == (120, 160)
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"model: {export}"


def test_segmentation_stage_defaults_to_unet_and_112_frames(compose_cfg) -> None:
    cfg = compose_cfg("train", ["stage=segmentation"])
    assert cfg.model._target_ == "segmentation_models_pytorch.Unet"
    assert cfg.stage.datamodule.num_labelled == 112 and cfg.stage.datamodule.image_size == 224
    assert cfg.export_path.endswith("seg_unet.pt")
    cfg = compose_cfg("train", ["stage=segmentation", "model=deeplabv3"])
    assert cfg.model._target_.endswith("DeepLabV3") and cfg.export_path.endswith("seg_deeplabv3.pt")
    cfg = compose_cfg("train", ["stage=segmentation", "model=dinov2_linear"])
    with pytest.raises(ConfigError, match=r"config key 'model\.backbone_path': not set"):
        instantiate_node(cfg, "model")
