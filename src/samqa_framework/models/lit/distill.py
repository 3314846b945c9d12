"""Distil a SAM image encoder (teacher, default ViT-B) into the student SAM's encoder (TinyViT): MSE on image
embeddings, as MobileSAM does ("decoupled distillation": only the image encoder is trained; the prompt encoder
and mask decoder are untouched and exported as they are).

Teacher embeddings are computed ONCE and cached on disk (``EmbeddingCache``, float16 memmap) keyed by the data
set, the frame list, the teacher config/checkpoint/seed, the input size and the augmentation variants; later
epochs and later runs read them without running the teacher. ``cache_teacher: false`` runs the teacher on the
fly instead.

Augmentation and the cache: the teacher must see exactly the image the student sees. In cached mode only flips
are allowed, and the cache holds the embedding of every flip variant of a frame (the un-augmented frame plus
its horizontal flip, and vertical / both when enabled): the first time a frame is met, its variants are rebuilt
bit-exactly from the batch image (flips are applied after resizing, ``flip_content``) and embedded in one
teacher call, so after one epoch every later epoch makes no teacher call at all. Random resized crops change the
image continuously and cannot be cached: they need ``cache_teacher: false`` (a ``ConfigError`` says so).

Without a teacher checkpoint the teacher is a RANDOM ViT: distillation then teaches nothing useful (the student
learns to imitate noise features); a warning says so. That only exercises the stage (the quick preset runs it
briefly); set the teacher's ``checkpoint`` to ``sam_vit_b_01ec64.pth`` for real distillation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from segment_anything.modeling import Sam
from torch import nn

from samqa_framework.models.lit.common import (
    build_optimizer,
    build_scheduler,
    check_finite,
    check_training_settings,
    set_trainable,
)
from samqa_framework.models.lit.embedding_cache import EmbeddingCache
from samqa_framework.models.sam.inputs import flip_content, normalize_images
from samqa_framework.utils.config import to_plain
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import instantiate_node

log = logging.getLogger(__name__)


class DistillModule(LightningModule):
    """Train ``sam.image_encoder`` to reproduce a frozen teacher encoder's embeddings (MSE).

    Args:
        sam: the student SAM (``cfg.model``); only its image encoder trains.
        teacher: ``{encoder: <encoder config with _target_>, checkpoint: path | null, checkpoint_format: auto,
            seed: int}``; the encoder must take the student's input size. ``seed`` fixes a random teacher's weights
            (so its cached embeddings stay valid across runs). Built here, so a bad teacher fails before training.
        optimizer, scheduler: see ``models/lit/common.py``.
        cache_teacher: cache teacher embeddings on disk (``cache_dir``) instead of running the teacher each step.
        teacher_batch_size: frames per teacher call when filling the cache.
    """

    def __init__(self, sam: Sam, teacher: dict | None = None, optimizer: dict | None = None,
                 scheduler: dict | None = None, cache_teacher: bool = True, cache_dir: str | None = None,
                 teacher_batch_size: int = 8) -> None:
        super().__init__()
        self.teacher_cfg = {"checkpoint": None, "checkpoint_format": "auto", "seed": 0, **(to_plain(teacher) or {})}
        if not isinstance(self.teacher_cfg.get("encoder"), dict) or "_target_" not in self.teacher_cfg["encoder"]:
            raise ConfigError("teacher.encoder", "needs an encoder config with a _target_ (e.g. model/encoder/vit_b)")
        self.optimizer_cfg, self.scheduler_cfg = to_plain(optimizer) or {}, to_plain(scheduler) or {}
        check_training_settings(self.optimizer_cfg, self.scheduler_cfg)
        self.cache_teacher = bool(cache_teacher)
        if self.cache_teacher and not cache_dir:
            raise ConfigError("cache_dir", "must be set when cache_teacher is true")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.teacher_batch_size = int(teacher_batch_size)
        self.save_hyperparameters({"teacher": self.teacher_cfg, "optimizer": self.optimizer_cfg,
                                   "scheduler": self.scheduler_cfg, "cache_teacher": self.cache_teacher,
                                   "cache_dir": str(cache_dir) if cache_dir else None})
        self.sam = sam
        set_trainable(sam.prompt_encoder, False)
        set_trainable(sam.mask_decoder, False)
        self.teacher_calls = 0  # teacher forward passes (the cache test counts them)
        try:
            teacher_encoder = self.build_teacher()
        except ConfigError as exc:
            raise exc.under("teacher") from exc
        # a plain attribute, not a registered submodule: outside state_dict, checkpoints and optimizer (frozen, rebuilt)
        object.__setattr__(self, "_teacher", teacher_encoder)
        self._caches: dict[str, EmbeddingCache] = {}
        self._variants: dict[str, list[tuple[bool, bool]]] = {}

    # ----------------------------------------------------------------------------------------- teacher

    def build_teacher(self) -> nn.Module:
        """The frozen teacher encoder; a ``ConfigError`` names a key of the ``teacher`` argument."""
        cfg = self.teacher_cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg["seed"]))
            encoder = instantiate_node(cfg, "encoder")
        student_size = int(self.sam.image_encoder.img_size)
        if int(getattr(encoder, "img_size", -1)) != student_size:
            raise ConfigError("encoder.img_size", f"the teacher takes {getattr(encoder, 'img_size', '?')} px inputs "
                                                  f"but the student {student_size} px; they must match")
        if cfg["checkpoint"]:
            from samqa_framework.models.sam.builder import build_sam

            encoder = build_sam(encoder, checkpoint=cfg["checkpoint"],
                                checkpoint_format=cfg["checkpoint_format"]).image_encoder
        else:
            log.warning("Distillation teacher %s has NO checkpoint (the teacher's checkpoint is null): it is a random "
                        "network and distilling it teaches the student nothing useful. This only exercises the stage; "
                        "set the teacher's checkpoint to a SAM ViT-B checkpoint (sam_vit_b_01ec64.pth) for real "
                        "distillation.", cfg["encoder"].get("_target_"))
        encoder.eval()
        set_trainable(encoder, False)
        return encoder

    @property
    def teacher(self) -> nn.Module:
        if next(self._teacher.parameters()).device != self.device:
            self._teacher.to(self.device)
        return self._teacher

    @torch.no_grad()
    def teacher_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher embeddings of normalised images, in chunks of ``teacher_batch_size``."""
        self.teacher_calls += 1
        return torch.cat([self.teacher(chunk) for chunk in x.split(self.teacher_batch_size)])

    def _teacher_key(self) -> dict[str, Any]:
        key = dict(self.teacher_cfg)
        ckpt = key.get("checkpoint")
        if ckpt and Path(ckpt).is_file():
            st = Path(ckpt).stat()
            key["checkpoint_file"] = [Path(ckpt).name, st.st_size, st.st_mtime_ns]
        return key

    # ------------------------------------------------------------------------------------------- setup

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None:
            return
        if self.cache_teacher and getattr(dm, "crop_enabled", False):
            raise ConfigError("cache_teacher", "must be false with the datamodule's random resized crops: they "
                                               "change the image the teacher sees, so its embeddings cannot be "
                                               "cached (or disable the crops)")
        self._variants = {"train": list(dm.variants), "val": [(False, False)]}
        if not self.cache_teacher:
            return
        dm.setup(stage)
        size = int(self.sam.image_encoder.img_size)
        with torch.no_grad():
            shape = tuple(self.teacher(torch.zeros(1, 3, size, size, device=self.device)).shape[1:])
        for split, dataset in (("train", dm.train_set), ("val", dm.val_set)):
            key = {"version": 1, "frames": dm.frames_identity(split), "teacher": self._teacher_key(),
                   "image_size": size, "variants": self._variants[split],
                   "pixel_mean": self.sam.pixel_mean.flatten().tolist(),
                   "pixel_std": self.sam.pixel_std.flatten().tolist()}
            self._caches[split] = EmbeddingCache(self.cache_dir, key, len(dataset), len(self._variants[split]), shape)
            log.info("teacher cache %s (%s): %.0f%% filled", self._caches[split].data_path, split,
                     100 * self._caches[split].fraction_filled)

    # ------------------------------------------------------------------------------------------- steps

    def _targets(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        if not self.cache_teacher:
            x = normalize_images(batch["image"], batch["input_size"], self.sam.pixel_mean, self.sam.pixel_std)
            return self.teacher_embed(x)
        cache = self._caches[split]
        variants = self._variants[split]
        index = batch["index"].cpu().numpy()
        variant = batch["variant"].cpu().numpy()
        todo = np.flatnonzero(~cache.complete(index))
        _, first = np.unique(index[todo], return_index=True)
        todo = todo[first]  # a frame drawn twice in one batch is embedded once
        if len(todo):
            imgs, sizes = batch["image"][todo], batch["input_size"][todo]
            # undo each sample's flip, then build every variant: exactly what the data set would produce
            base = torch.stack([flip_content(imgs[i:i + 1], sizes[i:i + 1], variants[variant[j]])[0]
                                for i, j in enumerate(todo)])
            all_imgs = torch.cat([flip_content(base, sizes, v) for v in variants])  # (V*M, 3, S, S), variant-major
            x = normalize_images(all_imgs, sizes.repeat(len(variants), 1), self.sam.pixel_mean, self.sam.pixel_std)
            emb = self.teacher_embed(x)
            emb = emb.view(len(variants), len(todo), *emb.shape[1:]).transpose(0, 1)
            cache.write(index[todo], emb)
        return cache.read(index, variant).to(self.device)

    def _mse(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        target = self._targets(batch, split)
        x = normalize_images(batch["image"], batch["input_size"], self.sam.pixel_mean, self.sam.pixel_std)
        return F.mse_loss(self.sam.image_encoder(x), target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._mse(batch, "train")
        check_finite(loss, self, batch_idx)
        self.log("train/mse", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # sync_dist: under DDP the mean over every rank's share (a no-op in one process)
        self.log("val/mse", self._mse(batch, "val"), prog_bar=True, batch_size=batch["image"].shape[0],
                 sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        opt = build_optimizer(self.sam.image_encoder, self.optimizer_cfg)
        return {"optimizer": opt, "lr_scheduler": build_scheduler(opt, self, self.scheduler_cfg)}
