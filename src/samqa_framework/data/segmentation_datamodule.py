"""Frames with a foreground mask (the union of every animal's GT mask), for the semantic segmentation baselines.

Training uses a small labelled subset, as in the paper (112 rat / 113 mouse images): ``num_labelled`` frames
spread evenly over all the training sequences' frames (all of them if there are fewer). Validation uses every
``val_every``-th frame of the evaluation sequences. The target of a frame is the union of the instance masks
that ``gt/masks.jsonl`` records for it (an animal hidden in the tunnel adds only its visible pixels, if any); a
frame without a mask record has no animal, unless ``gt/gt.txt`` labels one there (then the file is incomplete:
an error naming it).

A sample: ``image`` (3, h, w) uint8 RGB at ``image_size`` (``utils.images.resize_rgb``: the same
preparation as the predictor's), ``mask`` (h, w) int64 class indices (0 background, 1 animal), ``name``
(``seq:frame``); validation samples also carry ``mask_orig`` (H, W) bool at the frame's resolution, on which
the validation IoU is measured. Training flips (horizontal / vertical, p = 0.5 each) are the augmentation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from samqa_framework.data import rle
from samqa_framework.data.datamodules import FramesBase, VideoFramesDataModule, whole_at_least_one
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.images import as_hw, resize_mask, resize_rgb

log = logging.getLogger(__name__)


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(total)`` (first and last included); all if fewer."""
    if total <= 0:
        return []
    if count >= total:
        return list(range(total))
    if count == 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def foreground_labels(seqs: Seq[Sequence], refs: Seq[tuple[int, int]]) -> list[list[dict[str, Any]]]:
    """For each (sequence index, 0-based frame) of ``refs``: the RLEs of every instance mask of that frame."""
    out: list[list[dict[str, Any]]] = [[] for _ in refs]
    for si, seq in enumerate(seqs):
        wanted = {frame + 1: k for k, (s, frame) in enumerate(refs) if s == si}
        if not wanted:
            continue
        if not seq.has_masks():
            raise DataFormatError(seq.masks_path, "segmentation training needs instance masks (gt/masks.jsonl)")
        found = set()
        for frame, inst in rle.iter_masks(seq.masks_path):
            if frame in wanted:
                out[wanted[frame]] = list(inst.values())
                found.add(frame)
        missing = set(wanted) - found
        if missing:  # no record: fine for a frame without animals, an error where gt.txt labels one
            gt = seq.gt()
            labelled = {int(f) for f in gt.frame[np.asarray(gt.conf > 0)]} & missing
            if labelled:
                raise DataFormatError(seq.masks_path, f"no mask record for frame(s) {sorted(labelled)[:5]}, which "
                                                      "gt/gt.txt labels")
    return out


class SegmentationDataset(FramesBase):
    """Frames ``refs`` with their foreground masks (``labels[i]``: the instance RLEs of frame ``refs[i]``)."""

    def __init__(self, sequences: Seq[Sequence], refs: Seq[tuple[int, int]], labels: Seq[list[dict[str, Any]]],
                 image_size: tuple[int, int], train: bool = False, hflip: bool = False, vflip: bool = False,
                 keep_original: bool = False) -> None:
        super().__init__(sequences, refs, image_size[0])
        self.size = image_size
        self.labels = list(labels)
        self.train, self.hflip, self.vflip = train, hflip, vflip
        self.keep_original = keep_original

    def foreground(self, index: int, height: int, width: int) -> np.ndarray:
        """(H, W) bool union of the frame's instance masks."""
        mask = np.zeros((height, width), dtype=bool)
        for r in self.labels[index]:
            m = rle.decode(r)
            if m.shape != (height, width):
                seq, frame = self.refs[index]
                raise DataFormatError(self.sequences[seq].masks_path, f"frame {frame + 1}: masks are "
                                      f"{m.shape[1]}x{m.shape[0]}, the frame is {width}x{height}")
            mask |= m.astype(bool)
        return mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb = self.read_rgb(index)
        mask_orig = self.foreground(index, *rgb.shape[:2])
        img, mask = resize_rgb(rgb, self.size), resize_mask(mask_orig, self.size)
        if self.train and self.hflip and torch.rand(()) < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
        if self.train and self.vflip and torch.rand(()) < 0.5:
            img, mask = img[::-1], mask[::-1]
        sample = {"image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1),
                  "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(), "index": index,
                  "name": self.name(index)}
        if self.keep_original:
            sample["mask_orig"] = torch.from_numpy(mask_orig)
        return sample


def collate_segmentation(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"image": torch.stack([s["image"] for s in samples]), "mask": torch.stack([s["mask"] for s in samples]),
           "index": torch.tensor([s["index"] for s in samples]), "name": [s["name"] for s in samples]}
    if "mask_orig" in samples[0]:
        out["mask_orig"] = [s["mask_orig"] for s in samples]  # frames may differ in size
    return out


class SegmentationDataModule(VideoFramesDataModule):
    """``num_labelled`` evenly spaced training frames and every ``val_every``-th evaluation frame, with their
    foreground masks (see :class:`SegmentationDataset`).

    ``image_size``: ``S`` or ``[h, w]``, the nets' input (frames are resized to it, aspect not kept).
    """

    def __init__(self, root: str, image_size: int | Seq[int], num_labelled: int = 112, val_every: int = 10,
                 batch_size: int = 8, val_batch_size: int | None = None, num_workers: int = 0, hflip: bool = True,
                 vflip: bool = True) -> None:
        size = as_hw(image_size, f"{self.key_prefix}.image_size")
        super().__init__(root, size[0], 1, val_every, batch_size, val_batch_size, num_workers, hflip, vflip)
        self.size = size
        self.num_labelled = whole_at_least_one(num_labelled, f"{self.key_prefix}.num_labelled")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self._sequences("train"), self._sequences("eval")
        frames = [(si, f) for si, s in enumerate(train) for f in range(s.info.seq_length)]
        if not frames:
            raise ConfigError(f"{self.key_prefix}.root", f"the training sequences of {self.root} have no frames")
        refs = [frames[i] for i in evenly_spaced(len(frames), self.num_labelled)]
        if len(refs) < self.num_labelled:
            log.warning("only %d training frames: all are labelled (num_labelled=%d)", len(refs), self.num_labelled)
        self.train_set = SegmentationDataset(train, refs, foreground_labels(train, refs), self.size, train=True,
                                             hflip=self.hflip, vflip=self.vflip)
        refs = [(si, f) for si, s in enumerate(val) for f in range(0, s.info.seq_length, self.val_every)]
        self.val_set = SegmentationDataset(val, refs, foreground_labels(val, refs), self.size, keep_original=True)

    def train_dataloader(self) -> DataLoader:
        # a last batch of one frame would break BatchNorm after global pooling (DeepLabv3's ASPP): drop the
        # remainder (the shuffle drops another frame each epoch)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          collate_fn=collate_segmentation, persistent_workers=self.num_workers > 0,
                          drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, collate_segmentation)
