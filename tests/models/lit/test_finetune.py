from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from samqa_framework.data.datamodules import BoxPromptDataModule, collate_prompts
from samqa_framework.models.lit.common import TrainingDivergedError
from samqa_framework.models.lit.finetune import FinetuneModule, box_masks, decode_boxes
from samqa_framework.models.losses import bce_dice_loss, dice_loss, mask_iou
from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.models.sam.predictor import SamMaskPredictor
from tests.models.helpers_training import NanAt

SIZE = 64


def tiny_sam(seed: int = 0):
    torch.manual_seed(seed)
    return build_sam(TimmEncoder("tiny_vit_5m_224", img_size=SIZE))


def datamodule(root: Path, **kw) -> BoxPromptDataModule:
    args = {"image_size": SIZE, "every": 4, "val_every": 5, "batch_size": 4, **kw}
    return BoxPromptDataModule(str(root), **args)


def trainer(**kw) -> Trainer:
    args = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    return Trainer(**{**args, **kw})


def test_losses_are_zero_for_perfect_logits_and_large_for_wrong_ones() -> None:
    target = torch.zeros(2, 8, 8)
    target[:, 2:6, 2:6] = 1
    perfect = (target * 2 - 1) * 20
    assert dice_loss(perfect, target) < 1e-3
    total, parts = bce_dice_loss(perfect, target, bce_weight=1.0, dice_weight=2.0)
    assert total < 1e-3 and set(parts) == {"bce", "dice"}
    wrong, _ = bce_dice_loss(-perfect, target)
    assert wrong > 5
    assert torch.allclose(mask_iou(perfect > 0, target > 0), torch.ones(2))
    assert mask_iou(torch.zeros(1, 4, 4, dtype=torch.bool), torch.ones(1, 4, 4, dtype=torch.bool)).item() == 0
    with pytest.raises(ValueError, match="shape"):
        dice_loss(perfect, target[:, :4])


def test_batched_decoding_equals_sams_decoder_image_by_image() -> None:
    sam = tiny_sam().eval()
    emb = torch.randn(2, 256, SIZE // 16, SIZE // 16)
    boxes = torch.tensor([[[4.0, 5, 30, 40], [20, 10, 60, 50]], [[0, 0, 64, 64], [10, 30, 20, 40]]])
    with torch.no_grad():
        low, iou = decode_boxes(sam, emb.repeat_interleave(2, 0), boxes.reshape(-1, 4))
        for b in range(2):
            sparse, dense = sam.prompt_encoder(points=None, boxes=boxes[b], masks=None)
            ref, ref_iou = sam.mask_decoder(emb[b:b + 1], sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
            assert torch.allclose(low[2 * b:2 * b + 2], ref, atol=1e-4)
            assert torch.allclose(iou[2 * b:2 * b + 2], ref_iou, atol=1e-5)
    assert low.shape == (4, 1, SIZE // 4, SIZE // 4)


def test_box_masks_cover_exactly_the_box() -> None:
    m = box_masks(torch.tensor([[2.0, 1.0, 5.0, 3.0]]), 6, 8)
    assert m.sum() == 3 * 2 and m[0, 1:3, 2:5].all()


def test_fast_dev_run_logs_iou_and_box_baseline(tiny_rats: Path, tmp_path: Path) -> None:
    module = FinetuneModule(tiny_sam(), optimizer={"lr": 1e-3}, num_overlays=2, overlay_dir=str(tmp_path / "ov"))
    t = trainer(fast_dev_run=True)
    t.fit(module, datamodule=datamodule(tiny_rats))
    metrics = t.callback_metrics
    assert 0.0 <= float(metrics["val/iou"]) <= 1.0
    assert float(metrics["val/box_iou"]) > 0.4  # a tight GT box covers a rat fairly well
    assert np.isfinite(float(metrics["train/loss"]))
    overlays = sorted((tmp_path / "ov").glob("val_overlay_*.png"))
    assert len(overlays) == 2


def test_validation_masks_match_the_predictor_at_original_resolution(tiny_rats: Path) -> None:
    """val/iou measures what SamMaskPredictor (the annotation stage) would produce for the same boxes."""
    sam = tiny_sam(1)
    module = FinetuneModule(sam, num_overlays=0).eval()
    dm = datamodule(tiny_rats)
    dm.setup("validate")
    sample = dm.val_set[0]
    batch = dm.val_dataloader().collate_fn([sample])
    with torch.no_grad():
        low, _, _, _ = module(batch)
        h, w = (int(v) for v in sample["original_size"])
        ours = sam.postprocess_masks(low, tuple(int(v) for v in sample["input_size"]), (h, w))[:, 0] > 0
    frame = dm.val_set.read_rgb(0)
    theirs, _ = SamMaskPredictor(sam).predict_boxes(frame, sample["boxes_orig"].numpy(), bgr=False)
    assert theirs.shape == tuple(ours.shape) == (len(sample["boxes_orig"]), 120, 160)
    agree = (torch.from_numpy(theirs) == ours).float().mean()
    assert agree > 0.999




def test_nan_loss_stops_training_naming_step_and_batch(tiny_rats: Path) -> None:
    module = FinetuneModule(tiny_sam(), optimizer={"lr": 1e-4})
    t = trainer(max_steps=5, limit_val_batches=0, callbacks=[NanAt(2, lambda m: m.sam.mask_decoder.iou_token.weight)])
    with pytest.raises(TrainingDivergedError, match=r"global step 2, epoch 0, batch index 2"):
        t.fit(module, datamodule=datamodule(tiny_rats, batch_size=2))
    assert t.global_step == 2


@pytest.mark.slow
def test_resume_from_lightning_checkpoint(tiny_rats: Path, tmp_path: Path) -> None:
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    module = FinetuneModule(tiny_sam(), optimizer={"lr": 1e-3}, scheduler={"warmup_steps": 2})
    t = trainer(max_steps=2, limit_val_batches=0, enable_checkpointing=True, callbacks=[ckpt])
    t.fit(module, datamodule=datamodule(tiny_rats, batch_size=2))
    saved = {k: v.clone() for k, v in module.sam.state_dict().items()}
    last = tmp_path / "last.ckpt"
    assert last.is_file()

    resumed = FinetuneModule(tiny_sam(seed=5), optimizer={"lr": 1e-3}, scheduler={"warmup_steps": 2})
    seen = {}

    class Capture(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            seen["weights_equal"] = all(torch.equal(v, saved[k]) for k, v in pl_module.sam.state_dict().items())
            seen["step"] = trainer.global_step
            seen["adam_state"] = len(trainer.optimizers[0].state)

    t2 = trainer(max_steps=4, limit_val_batches=0, callbacks=[Capture()])
    t2.fit(resumed, datamodule=datamodule(tiny_rats, batch_size=2), ckpt_path=str(last))
    assert seen == {"weights_equal": True, "step": 2, "adam_state": seen["adam_state"]} and seen["adam_state"] > 0
    assert t2.global_step == 4


@pytest.mark.slow
def test_a_few_steps_on_one_batch_lower_the_loss(tiny_rats: Path) -> None:
    dm = datamodule(tiny_rats, hflip=False, vflip=False, box_jitter=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    module = FinetuneModule(tiny_sam(), optimizer={"lr": 3e-3, "weight_decay": 0.0})
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        low, iou, b, k = module(batch)
        loss, _ = module._loss(low, iou, batch["masks"][b, k].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_frozen_encoder_is_not_trained(tiny_rats: Path) -> None:
    module = FinetuneModule(tiny_sam(), freeze_image_encoder=True)
    before = {k: v.clone() for k, v in module.sam.image_encoder.state_dict().items()}
    decoder_before = module.sam.mask_decoder.output_upscaling[0].weight.clone()
    modes = []

    class Modes(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            modes.append((pl_module.sam.image_encoder.training, pl_module.sam.mask_decoder.training))

    t = trainer(max_steps=2, limit_val_batches=0, callbacks=[Modes()])
    t.fit(module, datamodule=datamodule(tiny_rats, batch_size=2))
    after = module.sam.image_encoder.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []  # weights and BatchNorm statistics
    assert not torch.equal(decoder_before, module.sam.mask_decoder.output_upscaling[0].weight)  # decoder trains
    assert modes == [(False, True), (False, True)]


def test_with_masks_auto_trains_on_the_mask_losses_and_box_on_the_box_terms(tiny_rats: Path) -> None:
    dm = datamodule(tiny_rats, hflip=False, vflip=False, box_jitter=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["has_mask"][batch["valid"]].all()
    sam = tiny_sam()
    auto = FinetuneModule(sam, loss={"box": {"pairwise_warmup_steps": 0}})
    with torch.no_grad():
        low, iou, b, k = auto(batch)
        loss, parts = auto._supervised_loss(batch, low, iou, b, k)
        mask_only, _ = auto._loss(low, iou, batch["masks"][b, k].float())
        assert loss == mask_only and {"bce", "dice", "iou"} <= set(parts) and "projection" not in parts
        box = FinetuneModule(sam, supervision="box", loss={"box": {"pairwise_warmup_steps": 0}})
        loss_box, parts_box = box._supervised_loss(batch, low, iou, b, k)
        box_only, _ = box._box_loss(batch, low, b, k)
        assert loss_box == box_only and set(parts_box) == {"projection", "pairwise"} and loss_box != loss
        # one animal without a mask: the batch's loss weights each animal's own loss
        batch["has_mask"][0, 0] = False
        mixed, parts = auto._supervised_loss(batch, low, iou, b, k)
        first = (b == 0) & (k == 0)
        n = len(b)
        expected = (auto._loss(low[~first], iou[~first], batch["masks"][b[~first], k[~first]].float())[0] * (n - 1)
                    + auto._box_loss(batch, low[first], b[first], k[first])[0]) / n
        assert torch.allclose(mixed, expected) and {"bce", "projection"} <= set(parts)


def test_box_only_labels_fine_tune_and_validate_on_the_box_fit(tiny_rats_boxes: Path) -> None:
    module = FinetuneModule(tiny_sam(), optimizer={"lr": 1e-3}, num_overlays=1)
    t = trainer(max_steps=3, limit_val_batches=2, val_check_interval=3)
    t.fit(module, datamodule=datamodule(tiny_rats_boxes, batch_size=2))  # was: "needs instance masks"
    m = t.callback_metrics
    assert t.global_step == 3 and np.isfinite(float(m["train/loss"]))
    assert {"train/projection", "train/pairwise"} <= set(m) and "train/bce" not in m
    assert 0.0 <= float(m["val/pred_box_iou"]) <= 1.0
    assert float(m["val/iou"]) == float(m["val/pred_box_iou"]) and "val/box_iou" not in m  # no GT mask anywhere


def test_mask_supervision_refuses_box_only_labels_naming_the_first(tiny_rats_boxes: Path) -> None:
    from samqa_framework.utils.errors import ConfigError

    module = FinetuneModule(tiny_sam(), supervision="mask")
    with pytest.raises(ConfigError, match=r"'supervision': is 'mask', but 20 of 20 labelled animals have a box but "
                                          r"no mask \(first: synthetic_rats-train frame 1 id \d+, not in .*masks"):
        trainer(max_steps=1, limit_val_batches=0).fit(module, datamodule=datamodule(tiny_rats_boxes))
    with pytest.raises(ConfigError, match=r"'supervision'"):
        FinetuneModule(tiny_sam(), supervision="boxes")
    with pytest.raises(ConfigError, match=r"'loss\.box\.colour_threshold'"):
        FinetuneModule(tiny_sam(), loss={"box": {"colour_threshold": 0.3}})


@pytest.mark.parametrize("resolution", ["low_res", "input"])
def test_box_terms_fall_over_a_few_steps_on_box_only_labels(tiny_rats_boxes: Path, resolution: str) -> None:
    dm = datamodule(tiny_rats_boxes, hflip=False, vflip=False, box_jitter=0.0)
    dm.setup("fit")
    batch = collate_prompts([dm.train_set[i] for i in range(4)])
    module = FinetuneModule(tiny_sam(), loss={"box": {"pairwise_warmup_steps": 0, "resolution": resolution}})
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(8):
        low, iou, b, k = module(batch)
        loss, parts = module._supervised_loss(batch, low, iou, b, k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and set(parts) == {"projection", "pairwise"}
    assert losses[-1] < 0.8 * losses[0]


def test_a_filled_box_target_trains_box_only_animals_on_their_rectangles(tiny_rats: Path) -> None:
    """loss.box.target=filled: a box-only animal's target is its box's rectangle at input resolution (BCE + Dice, as a
    mask); animals with a mask keep their mask loss; an unknown target is refused, naming the key."""
    from samqa_framework.models.box_supervision import rasterize_boxes
    from samqa_framework.utils.errors import ConfigError

    dm = datamodule(tiny_rats, hflip=False, vflip=False, box_jitter=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    module = FinetuneModule(tiny_sam(), loss={"box": {"target": "filled"}})
    with torch.no_grad():
        low, iou, b, k = module(batch)
        batch["has_mask"][0, 0] = False
        loss, parts = module._supervised_loss(batch, low, iou, b, k)
        first = (b == 0) & (k == 0)
        size = batch["image"].shape[-1]
        rect = rasterize_boxes(batch["target_boxes"][b[first], k[first]], size, size).float()
        n = len(b)
        expected = (module._loss(low[~first], iou[~first], batch["masks"][b[~first], k[~first]].float())[0] * (n - 1)
                    + module._loss(low[first], iou[first], rect)[0]) / n
        assert torch.allclose(loss, expected)
        assert {"bce", "filled_bce", "filled_dice"} <= set(parts) and "projection" not in parts
        # the rectangle covers the box's pixels (cell centres inside), nothing else
        x1, y1, x2, y2 = batch["target_boxes"][b[first], k[first]][0].tolist()
        assert rect.sum() == pytest.approx(
            (min(np.ceil(x2 - 0.5), size) - np.ceil(x1 - 0.5)) * (min(np.ceil(y2 - 0.5), size) - np.ceil(y1 - 0.5)))
    with pytest.raises(ConfigError, match=r"'loss\.box\.target'"):
        FinetuneModule(tiny_sam(), loss={"box": {"target": "rectangle"}})
