from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from samqa_framework.data.datamodules import FramesDataModule
from samqa_framework.models.lit.distill import DistillModule
from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.models.sam.inputs import flip_content, normalize_images
from samqa_framework.utils.errors import ConfigError

SIZE = 64
# a SMALL teacher keeps the tests fast; the stage's default is SAM's ViT-B
TEACHER = {"encoder": {"_target_": "samqa_framework.models.sam.encoders.TimmEncoder",
                       "model_name": "tiny_vit_5m_224", "img_size": SIZE}, "seed": 3}


def student():
    torch.manual_seed(0)
    return build_sam(TimmEncoder("tiny_vit_5m_224", img_size=SIZE))


def frames(root: Path, **kw) -> FramesDataModule:
    return FramesDataModule(str(root), **{"image_size": SIZE, "every": 4, "val_every": 10, "batch_size": 4, **kw})


def trainer(**kw) -> Trainer:
    args = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    return Trainer(**{**args, **kw})


class CallsPerEpoch(Callback):
    def __init__(self) -> None:
        self.calls: list[int] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.calls.append(pl_module.teacher_calls)


def test_teacher_embeddings_are_cached_once_then_read(tiny_rats: Path, tmp_path: Path, caplog) -> None:
    counter = CallsPerEpoch()
    module = DistillModule(student(), teacher=TEACHER, optimizer={"lr": 1e-3}, cache_dir=str(tmp_path / "cache"))
    dm = frames(tiny_rats, hflip=True)
    with caplog.at_level(logging.WARNING):
        t = trainer(max_epochs=3, callbacks=[counter])
        t.fit(module, datamodule=dm)
    assert "NO checkpoint" in caplog.text and "teaches the student nothing useful" in caplog.text
    first, second, third = counter.calls
    assert first > 0, "the first epoch must run the teacher"
    assert second == first and third == first, "later epochs must read the cache, not run the teacher"
    assert module._caches["train"].fraction_filled == 1.0  # the frame AND its flip, for every frame
    assert module._caches["train"].shape[:2] == (10, 2)
    assert 0 < float(t.callback_metrics["val/mse"]) < 10
    assert not any(k.startswith("_teacher") for k in module.state_dict())  # teacher stays out of checkpoints

    # cached embedding == the teacher run on the (flipped) image the student saw
    sample = dm.train_set[3]
    x = normalize_images(sample["image"][None], sample["input_size"][None], module.sam.pixel_mean,
                         module.sam.pixel_std)
    with torch.no_grad():
        direct = module.teacher(x)[0]
    cached = module._caches["train"].read([3], [sample["variant"]])[0]
    assert torch.allclose(direct, cached, atol=2e-2, rtol=1e-2)
    other = 1 - sample["variant"]
    assert not torch.allclose(direct, module._caches["train"].read([3], [other])[0], atol=2e-2)

    # a new run on the same data and teacher reuses the file: no teacher call while training
    counter2 = CallsPerEpoch()
    again = DistillModule(student(), teacher=TEACHER, optimizer={"lr": 1e-3}, cache_dir=str(tmp_path / "cache"))
    trainer(max_epochs=1, limit_val_batches=0, callbacks=[counter2]).fit(again, datamodule=frames(tiny_rats))
    assert counter2.calls == [0]


def test_flip_variants_are_rebuilt_exactly(tiny_rats: Path) -> None:
    dm = frames(tiny_rats, hflip=True, vflip=True)
    dm.setup("fit")
    plain = frames(tiny_rats, hflip=False)
    plain.setup("fit")
    plain.train_set.train = False
    seen = set()
    for i in range(len(dm.train_set)):
        s = dm.train_set[i]
        seen.add(s["variant"])
        undone = flip_content(s["image"][None], s["input_size"][None], dm.variants[s["variant"]])[0]
        assert torch.equal(undone, plain.train_set[i]["image"])
    assert len(seen) > 1 and dm.variants == [(False, False), (True, False), (False, True), (True, True)]


def test_without_cache_the_teacher_runs_every_step(tiny_rats: Path) -> None:
    module = DistillModule(student(), teacher=TEACHER, cache_teacher=False)
    t = trainer(max_steps=3, limit_val_batches=1, val_check_interval=3)
    t.fit(module, datamodule=frames(tiny_rats, crop={"enabled": True, "scale": [0.5, 1.0]}))
    assert module.teacher_calls == 3 + 1
    assert module._caches == {}


def test_cached_teacher_refuses_random_crops(tiny_rats: Path, tmp_path: Path) -> None:
    module = DistillModule(student(), teacher=TEACHER, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"stage\.datamodule\.crop\.enabled.*cache_teacher=false"):
        trainer(fast_dev_run=True).fit(module, datamodule=frames(tiny_rats, crop={"enabled": True}))


def test_teacher_input_size_must_match_the_student(tiny_rats: Path, tmp_path: Path) -> None:
    teacher = {"encoder": {**TEACHER["encoder"], "img_size": 128}}
    module = DistillModule(student(), teacher=teacher, cache_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"teacher\.encoder\.img_size.*128"):
        trainer(fast_dev_run=True).fit(module, datamodule=frames(tiny_rats))


def test_only_the_student_encoder_trains(tiny_rats: Path, tmp_path: Path) -> None:
    module = DistillModule(student(), teacher=TEACHER, cache_dir=str(tmp_path), optimizer={"lr": 1e-2})
    enc = {k: v.clone() for k, v in module.sam.image_encoder.state_dict().items()}
    dec = {k: v.clone() for k, v in module.sam.mask_decoder.state_dict().items()}
    trainer(max_steps=2, limit_val_batches=0).fit(module, datamodule=frames(tiny_rats))
    assert any(not torch.equal(v, module.sam.image_encoder.state_dict()[k]) for k, v in enc.items())
    assert all(torch.equal(v, module.sam.mask_decoder.state_dict()[k]) for k, v in dec.items())
