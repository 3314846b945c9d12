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
from samqa_framework.models.lit.segmentation import SegmentationModule, box_regions
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


def test_only_labelled_frames_are_used_and_box_only_frames_carry_their_boxes(tiny_rats: Path,
                                                                            tmp_path: Path) -> None:
    from tests.conftest import boxes_only

    root = boxes_only(tiny_rats, tmp_path / "sparse", frames=lambda f: f % 5 == 2)  # frames 2, 7, 12, ... (1-based)
    dm = datamodule(root, num_labelled=100, val_every=5)
    dm.setup("fit")  # before box supervision: "segmentation training needs instance masks"
    assert [f for _, f in dm.train_set.refs] == list(range(1, 40, 5))  # the labelled ones only, not 100 frames
    # no labelled evaluation frame is a multiple of val_every: all the labelled ones validate
    assert [f for _, f in dm.val_set.refs] == [1, 6, 11, 16] * 2
    assert dm.train_set.coverage.box_only == dm.train_set.coverage.animals == 2 * 8
    seq = DatasetManifest.read(root).sequences(root, "train")[0]
    dm.train_set.train = False
    plain = dm.train_set[1]
    assert plain["has_mask"] is False and plain["mask"].sum() == 0
    exact = torch.from_numpy(seq.gt().rows_of(7).xyxy).float() * torch.tensor([SIZE / 160, SIZE / 120] * 2)
    assert torch.allclose(plain["boxes"], exact, atol=1e-4) and plain["box_flag"].all()
    dm.train_set.train = True
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):  # the boxes follow the image's flips
        s = dm.train_set[1]
        for variant, dims in {"none": [], "h": [-1], "v": [-2], "hv": [-2, -1]}.items():
            if torch.equal(s["image"], plain["image"].flip(dims)):
                expected = plain["boxes"].clone()
                if -1 in dims:
                    expected[:, [0, 2]] = SIZE - plain["boxes"][:, [2, 0]]
                if -2 in dims:
                    expected[:, [1, 3]] = SIZE - plain["boxes"][:, [3, 1]]
                assert torch.allclose(s["boxes"], expected, atol=1e-4), variant
                seen.add(variant)
                break
        else:
            raise AssertionError("the image was not flipped as a whole")
    assert len(seen) >= 3
    batch = dm.train_dataloader().collate_fn([dm.train_set[i] for i in range(3)])
    assert batch["has_mask"].tolist() == [False] * 3 and batch["boxes"].shape == (3, 2, 4) and batch["box_valid"].all()


def test_box_regions_leave_other_animals_boxes_out() -> None:
    boxes = torch.tensor([[[0.0, 0, 4, 4], [2, 2, 6, 6], [6, 0, 8, 2]]])  # two overlapping animals, one hidden
    valid = torch.tensor([[True, True, True]])
    flag = torch.tensor([[True, True, False]])
    f_idx, own, region, union = box_regions(boxes, valid, flag, 8, 8)
    assert f_idx.tolist() == [0, 0] and own.shape == (2, 8, 8)
    assert region[0, 0:4, 0:4].all() and not region[0, 4:6, 4:6].any()  # its box, not the other's
    assert not region[0, 0:2, 6:8].any() and region[0, 7, 0]  # nor the hidden one's; free pixels belong
    assert region[1, 2:6, 2:6].all() and not region[1, 0:2, 0:2].any()
    assert union[0].sum() == 16 + 16 - 4


def test_with_masks_auto_trains_on_ce_dice_and_box_on_the_box_terms(tiny_rats: Path) -> None:
    torch.manual_seed(0)
    dm = datamodule(tiny_rats, hflip=False, vflip=False)
    dm.setup("fit")
    batch = dm.train_dataloader().collate_fn([dm.train_set[i] for i in range(4)])
    assert batch["has_mask"].all()
    net = instantiate(TINY_UNET)
    auto = SegmentationModule(net, SIZE, loss={"box": {"pairwise_warmup_steps": 0}})
    box = SegmentationModule(net, SIZE, supervision="box", loss={"box": {"pairwise_warmup_steps": 0}})
    with torch.no_grad():
        logits = auto(batch["image"])
        loss, parts = auto._supervised_loss(logits, batch)
        assert loss == auto._loss(logits, batch["mask"])[0] and set(parts) == {"ce", "dice"}
        loss_box, parts = box._supervised_loss(logits, batch)
        assert set(parts) == {"projection", "pairwise"} and loss_box != loss
        assert loss_box == box._box_loss(logits, batch["image"], batch["boxes"], batch["box_valid"],
                                         batch["box_flag"])[0]


def test_box_only_frames_train_and_validate_on_the_box_fit(tiny_rats_boxes: Path) -> None:
    torch.manual_seed(0)
    module = SegmentationModule(instantiate(TINY_UNET), SIZE, optimizer={"lr": 1e-3})
    t = trainer(max_steps=3, limit_val_batches=1, val_check_interval=2)
    t.fit(module, datamodule=datamodule(tiny_rats_boxes, batch_size=2))
    m = t.callback_metrics
    assert t.global_step == 3 and np.isfinite(float(m["train/loss"]))
    assert {"train/projection", "train/pairwise"} <= set(m) and "train/ce" not in m
    assert 0.0 <= float(m["val/pred_box_iou"]) <= 1.0
    assert float(m["val/iou"]) == float(m["val/pred_box_iou"]) and "val/dice" not in m  # no GT mask anywhere
    module = SegmentationModule(instantiate(TINY_UNET), SIZE, supervision="mask")
    with pytest.raises(ConfigError, match=r"'supervision': is 'mask', but 16 of 16 labelled animals have a box"):
        trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=datamodule(tiny_rats_boxes))


def test_box_terms_alone_learn_the_animals_shape(tiny_rats_boxes: Path, tiny_rats: Path) -> None:
    """40 steps on one batch of box-labelled frames: the loss falls and the foreground fits the rats' true masks
    (which training never saw) better than their boxes do (measured: IoU 0.83 against the boxes' 0.59)."""
    torch.manual_seed(0)
    boxed, masked = (datamodule(root, hflip=False, vflip=False) for root in (tiny_rats_boxes, tiny_rats))
    boxed.setup("fit")
    masked.setup("fit")
    batch = boxed.train_dataloader().collate_fn([boxed.train_set[i] for i in range(4)])
    truth = torch.stack([masked.train_set[i]["mask"] for i in range(4)]).bool()  # the same frames' GT masks
    module = SegmentationModule(instantiate(TINY_UNET), SIZE, loss={"box": {"pairwise_warmup_steps": 0}})
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, parts = module._supervised_loss(module(batch["image"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and set(parts) == {"projection", "pairwise"}
    assert losses[-1] < 0.3 * losses[0]
    with torch.no_grad():
        logits = module(batch["image"])
    pred = logits[:, 1] > logits[:, 0]
    boxes = box_regions(batch["boxes"], batch["box_valid"], batch["box_flag"], SIZE, SIZE)[3]

    def iou(a: torch.Tensor) -> float:
        return float((a & truth).sum() / (a | truth).sum())

    assert iou(pred) > iou(boxes) + 0.1
