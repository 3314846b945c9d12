"""Frames with a foreground mask (the union of every animal's GT mask), for the semantic segmentation baselines.

Training uses a small labelled subset, as in the paper (112 rat / 113 mouse images): ``num_labelled`` frames
spread evenly over the training sequences' labelled frames (all of them if there are fewer). Validation uses every
``val_every``-th frame of the evaluation sequences. Only labelled frames are used: a frame with at least one row in
``gt/gt.txt`` (any flag); a sequence without ``gt/gt.txt`` is left out, by name. The target of a frame is the union
of the instance masks that ``gt/masks.jsonl`` records for it (an animal hidden in the tunnel adds only its visible
pixels, if any; a frame whose animals are all hidden and unrecorded is all background).

A frame where an animal labelled visible (flag > 0) has no mask (an import of boxes, a box a person drew) is a
box-labelled frame: ``has_mask`` False, and the module trains it on its boxes (``models/box_supervision.py``).
Every sample carries the frame's boxes: ``boxes`` (K, 4) float32 x1, y1, x2, y2 in net-input pixels, ``box_flag``
(K,) bool (True: an animal labelled visible; False: hidden, flag 0, whose pixels are left unconstrained).

A sample: ``image`` (3, h, w) uint8 RGB at ``image_size`` (``utils.images.resize_rgb``: the same
preparation as the predictor's), ``mask`` (h, w) int64 class indices (0 background, 1 animal; all 0 in a
box-labelled frame), ``has_mask``, ``boxes``, ``box_flag``, ``name`` (``seq:frame``); validation samples also carry
``mask_orig`` (H, W) bool and ``boxes_orig`` (K, 4) at the frame's resolution, on which validation is measured.
Training flips (horizontal / vertical, p = 0.5 each; boxes follow) are the augmentation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence as Seq
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from samqa_framework.data import rle
from samqa_framework.data.datamodules import FramesBase, MaskCoverage, VideoFramesDataModule, whole_at_least_one
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import DataFormatError
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


def labelled_frames(seqs: Seq[Sequence], task: str = "segmentation training") -> list[tuple[int, int]]:
    """(sequence index, 0-based frame) of every frame with a ``gt/gt.txt`` row; sequences without ground truth
    are left out with a warning naming them."""
    out = []
    for si, seq in enumerate(seqs):
        if not seq.has_gt():
            log.warning("%s leaves out sequence %s: no ground truth (%s not found)", task, seq.name, seq.gt_path)
            continue
        out += [(si, int(f) - 1) for f in np.unique(seq.gt().frame)]
    return out


def frame_labels(seqs: Seq[Sequence], refs: Seq[tuple[int, int]]) -> list[dict[str, Any]]:
    """For each (sequence index, 0-based frame) of ``refs``: ``rles`` (every instance mask recorded for the frame),
    ``boxes`` (K, 4) float32 x1, y1, x2, y2 and ``flags`` (K,) bool (flag > 0) of its GT rows, and ``has_mask``:
    whether every animal labelled visible has a mask (else the frame trains on its boxes)."""
    out: list[dict[str, Any]] = [{} for _ in refs]
    for si, seq in enumerate(seqs):
        wanted = {frame + 1: k for k, (s, frame) in enumerate(refs) if s == si}
        if not wanted:
            continue
        records = {}
        if seq.has_masks():
            for frame, inst in rle.iter_masks(seq.masks_path):
                if frame in wanted:
                    records[frame] = inst
        gt = seq.gt()
        for frame, k in wanted.items():
            rows, inst = gt.rows_of(frame), records.get(frame, {})
            flags = np.asarray(rows.conf > 0)
            has_mask = all(int(i) in inst for i in rows.track_id[flags])
            out[k] = {"rles": list(inst.values()), "boxes": rows.xyxy.astype(np.float32), "flags": flags,
                      "ids": rows.track_id.copy(), "has_mask": has_mask}
    return out


class SegmentationDataset(FramesBase):
    """Frames ``refs`` with their foreground masks and boxes (``labels[i]``: see :func:`frame_labels`)."""

    def __init__(self, sequences: Seq[Sequence], refs: Seq[tuple[int, int]], labels: Seq[dict[str, Any]],
                 image_size: tuple[int, int], train: bool = False, hflip: bool = False, vflip: bool = False,
                 keep_original: bool = False, frame_cache: str | os.PathLike[str] | None = None) -> None:
        super().__init__(sequences, refs, image_size[0], frame_cache)
        self.size = image_size
        self.labels = list(labels)
        self.train, self.hflip, self.vflip = train, hflip, vflip
        self.keep_original = keep_original
        self.coverage = MaskCoverage()  # counted per animal labelled visible, as the fine-tuning data counts
        for (seq, frame), lab in zip(self.refs, self.labels, strict=True):
            for tid in lab["ids"][lab["flags"]]:
                self.coverage.add(lab["has_mask"], f"{self.sequences[seq].name} frame {frame + 1} id {int(tid)}, "
                                                   f"not in {self.sequences[seq].masks_path}")

    def foreground(self, index: int, height: int, width: int) -> np.ndarray:
        """(H, W) bool union of the frame's instance masks."""
        mask = np.zeros((height, width), dtype=bool)
        for r in self.labels[index]["rles"]:
            m = rle.decode(r)
            if m.shape != (height, width):
                seq, frame = self.refs[index]
                raise DataFormatError(self.sequences[seq].masks_path, f"frame {frame + 1}: masks are "
                                      f"{m.shape[1]}x{m.shape[0]}, the frame is {width}x{height}")
            mask |= m.astype(bool)
        return mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb = self.read_rgb(index)
        height, width = rgb.shape[:2]
        lab = self.labels[index]
        mask_orig = self.foreground(index, height, width)
        img, mask = resize_rgb(rgb, self.size), resize_mask(mask_orig, self.size)
        h, w = self.size
        boxes = lab["boxes"].reshape(-1, 4) * np.array([w / width, h / height] * 2, dtype=np.float32)
        if self.train and self.hflip and torch.rand(()) < 0.5:
            img, mask = img[:, ::-1], mask[:, ::-1]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if self.train and self.vflip and torch.rand(()) < 0.5:
            img, mask = img[::-1], mask[::-1]
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
        sample = {"image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1),
                  "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(), "has_mask": bool(lab["has_mask"]),
                  "boxes": torch.from_numpy(boxes.astype(np.float32)), "box_flag": torch.from_numpy(lab["flags"]),
                  "index": index, "name": self.name(index)}
        if self.keep_original:
            sample["mask_orig"] = torch.from_numpy(mask_orig)
            sample["boxes_orig"] = torch.from_numpy(lab["boxes"].reshape(-1, 4).astype(np.float32))
        return sample


def collate_segmentation(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack frames; pad each frame's boxes to the batch's most (``box_valid`` marks real ones)."""
    kmax = max(len(s["boxes"]) for s in samples)
    boxes = torch.zeros((len(samples), kmax, 4))
    box_valid = torch.zeros((len(samples), kmax), dtype=torch.bool)
    box_flag = torch.zeros((len(samples), kmax), dtype=torch.bool)
    for i, s in enumerate(samples):
        k = len(s["boxes"])
        boxes[i, :k], box_valid[i, :k], box_flag[i, :k] = s["boxes"], True, s["box_flag"]
    out = {"image": torch.stack([s["image"] for s in samples]), "mask": torch.stack([s["mask"] for s in samples]),
           "has_mask": torch.tensor([s["has_mask"] for s in samples]), "boxes": boxes, "box_valid": box_valid,
           "box_flag": box_flag, "index": torch.tensor([s["index"] for s in samples]),
           "name": [s["name"] for s in samples]}
    if "mask_orig" in samples[0]:
        out["mask_orig"] = [s["mask_orig"] for s in samples]  # frames may differ in size
        out["boxes_orig"] = [s["boxes_orig"] for s in samples]
    return out


class SegmentationDataModule(VideoFramesDataModule):
    """``num_labelled`` evenly spaced labelled training frames and every ``val_every``-th labelled evaluation frame,
    with their foreground masks or boxes (see :class:`SegmentationDataset`).

    ``image_size``: ``S`` or ``[h, w]``, the nets' input (frames are resized to it, aspect not kept).
    """

    def __init__(self, root: str, image_size: int | Seq[int], num_labelled: int = 112, val_every: int = 10,
                 batch_size: int = 8, val_batch_size: int | None = None, num_workers: int = 0, hflip: bool = True,
                 vflip: bool = True, frame_cache_dir: str | None = None) -> None:
        size = as_hw(image_size, "image_size")
        super().__init__(root, size[0], 1, val_every, batch_size, val_batch_size, num_workers, hflip, vflip,
                         frame_cache_dir)
        self.size = size
        self.num_labelled = whole_at_least_one(num_labelled, "num_labelled")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self._sequences("train"), self._sequences("eval")
        frames = labelled_frames(train)
        if not frames:
            raise DataFormatError(self.root, "the training sequences have no labelled frame (a gt/gt.txt row)")
        refs = [frames[i] for i in evenly_spaced(len(frames), self.num_labelled)]
        if len(refs) < self.num_labelled:
            log.warning("only %d labelled training frames: all are used (num_labelled=%d)", len(refs),
                        self.num_labelled)
        self.train_set = SegmentationDataset(train, refs, frame_labels(train, refs), self.size, train=True,
                                             hflip=self.hflip, vflip=self.vflip, frame_cache=self.frame_cache_dir)
        frames = labelled_frames(val, "segmentation validation")
        refs = [(si, f) for si, f in frames if f % self.val_every == 0]
        if not refs and frames:  # sparse labels (a few answered frames) may all miss the grid: use them all
            log.warning("no labelled evaluation frame is a multiple of val_every=%d: validating on all %d labelled "
                        "frames", self.val_every, len(frames))
            refs = frames
        if not refs:
            raise DataFormatError(self.root, "the evaluation sequences have no labelled frame to validate on")
        self.val_set = SegmentationDataset(val, refs, frame_labels(val, refs), self.size, keep_original=True,
                                           frame_cache=self.frame_cache_dir)

    def train_dataloader(self) -> DataLoader:
        # a last batch of one frame would break BatchNorm after global pooling (DeepLabv3's ASPP): drop the
        # remainder (the shuffle drops another frame each epoch)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          collate_fn=collate_segmentation, persistent_workers=self.num_workers > 0,
                          drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, collate_segmentation)
