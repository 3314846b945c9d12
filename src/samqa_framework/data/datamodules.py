"""Lightning data modules over the frames of a data set's videos, for the two SAM training stages.

- :class:`FramesDataModule` (distillation): frames only, every ``every``-th frame of the training sequences;
  validation on every ``val_every``-th frame of the evaluation sequences.
- :class:`BoxPromptDataModule` (fine-tuning): one sample = one frame with all its K labelled animals: their
  ground-truth boxes (rows of ``gt/gt.txt`` with flag > 0), randomly jittered in training, as prompts, and
  their ground-truth masks (``gt/masks.jsonl``) as targets where the labels have them; an animal with a box but
  no mask (an import of boxes, a box a person drew) comes with ``has_mask`` False and its exact box, for box
  supervision (``models/box_supervision.py``). What a split holds is counted in its :class:`MaskCoverage`.

Frames are decoded lazily, one per sample (``Sequence.frames().read``), or, with ``frame_cache_dir``, decoded once in
order into a memory-mapped file that samples read a row of (``data.frame_cache``: no seek into a video per sample);
only the (small) box table and the RLE strings of the frames used are held in memory. Images are prepared exactly as
segment-anything's ``SamPredictor`` prepares them: RGB, longest side resized to ``image_size``
(``ResizeLongestSide``), then zero-padded at the bottom/right to ``image_size`` squared. They stay ``uint8``: pixel
normalisation is the model's (``models.sam.inputs.normalize_images``, = ``Sam.preprocess``), so the padding is exactly
SAM's.

Augmentation (training only): horizontal / vertical flips of the resized image (boxes and masks follow), and
for distillation optionally random resized crops of the frame. Flips are applied AFTER resizing, so the
distillation module can rebuild every flip variant of a sample bit-exactly from the batch image
(``models.sam.inputs.flip_content``), which its teacher-embedding cache relies on.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from segment_anything.utils.transforms import ResizeLongestSide
from torch.utils.data import DataLoader, Dataset

from samqa_framework.data import rle
from samqa_framework.data.frame_cache import FrameCache
from samqa_framework.data.sequence import DatasetManifest, Sequence, read_build_hash
from samqa_framework.data.video import FrameSource
from samqa_framework.utils.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

Variant = tuple[bool, bool]  # (horizontal flip, vertical flip)


# ------------------------------------------------------------------------------------------ image helpers


def resize_longest(rgb: np.ndarray, image_size: int) -> np.ndarray:
    """``SamPredictor``'s resize: longest side to ``image_size`` (PIL bilinear), aspect kept."""
    return ResizeLongestSide(image_size).apply_image(rgb)


def pad_to_square(img: np.ndarray, image_size: int) -> torch.Tensor:
    """(h, w, 3) uint8 -> (3, S, S) uint8 tensor, zero padding at the bottom and right (as ``Sam.preprocess``)."""
    h, w = img.shape[:2]
    out = torch.zeros((3, image_size, image_size), dtype=torch.uint8)
    out[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    return out


def variants_for(hflip: bool, vflip: bool) -> list[Variant]:
    """The flip variants a data module may produce; index 0 is always the un-augmented image."""
    out: list[Variant] = [(False, False)]
    if hflip:
        out.append((True, False))
    if vflip:
        out.append((False, True))
    if hflip and vflip:
        out.append((True, True))
    return out


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator | None, frac: float, max_px: float, width: int,
                 height: int) -> np.ndarray:
    """Move each box edge by N(0, frac * box side), clipped to ``max_px``; keep the box inside the image.

    ``boxes`` (K, 4) as x1, y1, x2, y2 in pixels. A box never collapses below one pixel. (SAM trains with
    noise of std 10 % of the side, at most 20 px; the defaults of the fine-tuning stage follow that.)
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if rng is not None and frac > 0 and len(boxes):
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        side = np.stack([bw, bh, bw, bh], axis=1)
        noise = rng.normal(0.0, 1.0, boxes.shape) * frac * side
        boxes += np.clip(noise, -max_px, max_px)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    x1 = np.minimum(boxes[:, 0], boxes[:, 2])
    x2 = np.maximum(boxes[:, 0], boxes[:, 2])
    y1 = np.minimum(boxes[:, 1], boxes[:, 3])
    y2 = np.maximum(boxes[:, 1], boxes[:, 3])
    # at least one pixel wide and high, still inside the image
    x2 = np.maximum(x2, np.minimum(x1 + 1, width))
    x1 = np.minimum(x1, x2 - 1)
    y2 = np.maximum(y2, np.minimum(y1 + 1, height))
    y1 = np.minimum(y1, y2 - 1)
    return np.stack([x1, y1, x2, y2], axis=1)


def _rng() -> np.random.Generator:
    """A generator seeded from torch's RNG, which Lightning seeds per process and per data-loader worker."""
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))


# ---------------------------------------------------------------------------------------------- datasets


class FramesBase(Dataset):
    """Frames ``refs = [(sequence index, 0-based frame)]`` of ``sequences``, decoded on request.

    ``frame_cache``: a folder; the frames of ``refs`` are then decoded now, once, in order, into a file there (or
    found there from an earlier run: :class:`~samqa_framework.data.frame_cache.FrameCache`), and read from it. Build
    the data set in the main process (a data module's ``setup``), before loader workers start: they only map the
    file. None: every read decodes from the video.
    """

    def __init__(self, sequences: Seq[Sequence], refs: Seq[tuple[int, int]], image_size: int,
                 frame_cache: str | os.PathLike[str] | None = None) -> None:
        self.sequences = list(sequences)
        self.refs = list(refs)
        self.image_size = int(image_size)
        self._sources: dict[int, FrameSource] = {}
        self._caches: dict[int, FrameCache] = {}
        if frame_cache is not None:
            for seq in sorted({s for s, _ in self.refs}):
                cache = FrameCache.ensure(frame_cache, self.sequences[seq], (f for s, f in self.refs if s == seq))
                if cache is not None:
                    self._caches[seq] = cache

    def __len__(self) -> int:
        return len(self.refs)

    def read_rgb(self, index: int) -> np.ndarray:
        """The frame as (H, W, 3) uint8 RGB."""
        seq, frame = self.refs[index]
        if seq in self._caches:
            cache = self._caches[seq]
            return cache.read(cache.row(frame))
        if seq not in self._sources:
            self._sources[seq] = self.sequences[seq].frames()
        return cv2.cvtColor(self._sources[seq].read(frame), cv2.COLOR_BGR2RGB)

    def name(self, index: int) -> str:
        seq, frame = self.refs[index]
        return f"{self.sequences[seq].name}:{frame + 1}"


class FramesDataset(FramesBase):
    """Frames for distillation: ``{"image", "input_size", "index", "variant"}``.

    ``variant`` indexes ``variants_for(hflip, vflip)``: which flips were applied (always 0 without ``train``).
    ``crop`` = (scale range, ratio range) draws a random resized crop of the frame before resizing.
    """

    def __init__(self, sequences: Seq[Sequence], refs: Seq[tuple[int, int]], image_size: int, train: bool = False,
                 hflip: bool = False, vflip: bool = False,
                 crop: tuple[tuple[float, float], tuple[float, float]] | None = None,
                 frame_cache: str | os.PathLike[str] | None = None) -> None:
        super().__init__(sequences, refs, image_size, frame_cache)
        self.train, self.crop = train, crop
        self.variants = variants_for(hflip, vflip)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb = self.read_rgb(index)
        variant = 0
        if self.train and self.crop is not None:
            rgb = random_resized_crop(rgb, _rng(), *self.crop)
        img = resize_longest(rgb, self.image_size)
        if self.train and len(self.variants) > 1:
            variant = int(torch.randint(0, len(self.variants), ()).item())
            img = _flip_np(img, self.variants[variant])
        return {"image": pad_to_square(img, self.image_size), "input_size": torch.tensor(img.shape[:2]),
                "index": index, "variant": variant}


def _flip_np(img: np.ndarray, variant: Variant) -> np.ndarray:
    if variant[0]:
        img = img[:, ::-1]
    if variant[1]:
        img = img[::-1]
    return np.ascontiguousarray(img)


def random_resized_crop(rgb: np.ndarray, rng: np.random.Generator, scale: Seq[float],
                        ratio: Seq[float]) -> np.ndarray:
    """A crop of area ``scale`` x the frame's and aspect ``ratio`` (log-uniform), as torchvision draws it."""
    h, w = rgb.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw])
    return rgb


@dataclass
class MaskCoverage:
    """How many labelled animals of a split have a mask, and where the first one without it is (which the training
    modules name when ``supervision=mask`` refuses box-only labels)."""

    animals: int = 0
    box_only: int = 0
    first_box_only: str | None = None

    def add(self, has_mask: bool, where: str) -> None:
        self.animals += 1
        if not has_mask:
            self.box_only += 1
            if self.first_box_only is None:
                self.first_box_only = where

    def describe(self) -> str:
        """E.g. ``12 of 80 labelled animals have a box but no mask (first: ...)``."""
        text = f"{self.box_only} of {self.animals} labelled animals have a box but no mask"
        return text + (f" (first: {self.first_box_only})" if self.first_box_only else "")


class BoxPromptDataset(FramesBase):
    """One frame with all its labelled animals.

    A sample: ``image`` (3, S, S) uint8, ``input_size`` (h, w), ``original_size`` (H, W), ``boxes`` (K, 4)
    float32 prompts in input-image pixels (x1, y1, x2, y2; jittered in training), ``target_boxes`` (K, 4) the
    exact GT boxes there (what box supervision fits), ``masks`` (K, S, S) uint8 targets at input resolution
    (padded like the image; all 0 where ``has_mask`` (K,) is False: the label is a box only), ``ids`` (K,),
    ``index``, ``name`` (``seq:frame``); with ``keep_original``: ``masks_orig`` (K, H, W) bool and ``boxes_orig``
    (K, 4), the exact GT boxes, at the frame's own resolution (for validation IoU).
    """

    def __init__(self, sequences: Seq[Sequence], refs: Seq[tuple[int, int]], labels: Seq[dict[str, Any]],
                 image_size: int, train: bool = False, hflip: bool = False, vflip: bool = False,
                 box_jitter: float = 0.0, box_jitter_max_px: float = 20.0, keep_original: bool = False,
                 frame_cache: str | os.PathLike[str] | None = None) -> None:
        super().__init__(sequences, refs, image_size, frame_cache)
        self.labels = list(labels)
        self.train, self.hflip, self.vflip = train, hflip, vflip
        self.box_jitter, self.box_jitter_max_px = float(box_jitter), float(box_jitter_max_px)
        self.keep_original = keep_original
        self.transform = ResizeLongestSide(self.image_size)
        self.coverage = MaskCoverage()
        for (seq, frame), lab in zip(self.refs, self.labels, strict=True):
            for tid, r in zip(lab["ids"], lab["rles"], strict=True):
                self.coverage.add(r is not None, f"{self.sequences[seq].name} frame {frame + 1} id {int(tid)}, "
                                                 f"not in {self.sequences[seq].masks_path}")

    def decode_masks(self, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) bool masks of the frame's animals (all False for a box-only one) and (K,) bool has-mask."""
        lab = self.labels[index]
        has_mask = np.array([r is not None for r in lab["rles"]], dtype=bool)
        masks = np.zeros((len(has_mask), height, width), dtype=bool)
        for k, r in enumerate(lab["rles"]):
            if r is None:
                continue
            m = rle.decode(r)
            if m.shape != (height, width):
                raise DataFormatError(self.sequences[self.refs[index][0]].masks_path,
                                      f"frame {self.refs[index][1] + 1}: masks are {m.shape[1]}x{m.shape[0]}, "
                                      f"the frame is {width}x{height}")
            masks[k] = m
        return masks, has_mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb = self.read_rgb(index)
        height, width = rgb.shape[:2]
        lab = self.labels[index]
        masks_orig, has_mask = self.decode_masks(index, height, width)
        boxes = jitter_boxes(lab["boxes"], _rng() if self.train else None, self.box_jitter, self.box_jitter_max_px,
                             width, height)
        img = self.transform.apply_image(rgb)
        h, w = img.shape[:2]
        boxes_in = self.transform.apply_boxes(boxes, (height, width))
        targets_in = self.transform.apply_boxes(np.asarray(lab["boxes"], dtype=np.float64).reshape(-1, 4),
                                                (height, width))
        masks_in = np.stack([cv2.resize(m.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
                             for m in masks_orig])
        if self.train and self.hflip and torch.rand(()) < 0.5:
            img, masks_in = img[:, ::-1], masks_in[:, :, ::-1]
            for b in (boxes_in, targets_in):
                b[:, [0, 2]] = w - b[:, [2, 0]]
        if self.train and self.vflip and torch.rand(()) < 0.5:
            img, masks_in = img[::-1], masks_in[:, ::-1]
            for b in (boxes_in, targets_in):
                b[:, [1, 3]] = h - b[:, [3, 1]]
        masks = torch.zeros((len(masks_in), self.image_size, self.image_size), dtype=torch.uint8)
        masks[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(masks_in))
        sample = {"image": pad_to_square(img, self.image_size), "input_size": torch.tensor([h, w]),
                  "original_size": torch.tensor([height, width]),
                  "boxes": torch.from_numpy(boxes_in.astype(np.float32)),
                  "target_boxes": torch.from_numpy(targets_in.astype(np.float32)), "masks": masks,
                  "has_mask": torch.from_numpy(has_mask), "ids": torch.as_tensor(lab["ids"]), "index": index,
                  "name": self.name(index)}
        if self.keep_original:
            sample["masks_orig"] = torch.from_numpy(masks_orig)
            sample["boxes_orig"] = torch.as_tensor(np.asarray(lab["boxes"], dtype=np.float32))
        return sample


def collate_frames(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"image": torch.stack([s["image"] for s in samples]),
            "input_size": torch.stack([s["input_size"] for s in samples]),
            "index": torch.tensor([s["index"] for s in samples]),
            "variant": torch.tensor([s["variant"] for s in samples])}


def collate_prompts(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack frames; pad the K animals of each frame to the batch's largest K (``valid`` marks real ones,
    ``has_mask`` those of them with a mask)."""
    kmax = max(len(s["boxes"]) for s in samples)
    size = samples[0]["image"].shape[-1]
    b = len(samples)
    boxes = torch.zeros((b, kmax, 4))
    target_boxes = torch.zeros((b, kmax, 4))
    masks = torch.zeros((b, kmax, size, size), dtype=torch.uint8)
    valid = torch.zeros((b, kmax), dtype=torch.bool)
    has_mask = torch.zeros((b, kmax), dtype=torch.bool)
    ids = torch.full((b, kmax), -1, dtype=torch.long)
    for i, s in enumerate(samples):
        k = len(s["boxes"])
        boxes[i, :k], target_boxes[i, :k], masks[i, :k] = s["boxes"], s["target_boxes"], s["masks"]
        valid[i, :k], has_mask[i, :k], ids[i, :k] = True, s["has_mask"], s["ids"]
    out = {"image": torch.stack([s["image"] for s in samples]),
           "input_size": torch.stack([s["input_size"] for s in samples]),
           "original_size": torch.stack([s["original_size"] for s in samples]),
           "boxes": boxes, "target_boxes": target_boxes, "masks": masks, "valid": valid, "has_mask": has_mask,
           "ids": ids,
           "index": torch.tensor([s["index"] for s in samples]), "name": [s["name"] for s in samples]}
    if "masks_orig" in samples[0]:
        out["masks_orig"] = [s["masks_orig"] for s in samples]
        out["boxes_orig"] = [s["boxes_orig"] for s in samples]
    return out


# ---------------------------------------------------------------------------------------------- indexing


def whole_at_least_one(value: int, key: str) -> int:
    if int(value) != value or value < 1:
        raise ConfigError(key, f"must be a whole number >= 1, got {value}")
    return int(value)


def sequence_identity(seq: Sequence) -> dict[str, Any]:
    """What identifies a sequence's content: the synthetic builder's config hash, else file sizes and times."""
    config_hash = read_build_hash(seq.root)
    if config_hash is not None:
        return {"name": seq.name, "config_hash": config_hash}
    stats = []
    # an import links its video or frame folder from outside the sequence folder
    linked = [Path(seq.info.video)] if seq.info.video and Path(seq.info.video).is_absolute() else []
    for path in (seq.gt_path, seq.masks_path, *(seq.root / n for n in ("video.mp4", "img1", "seqinfo.ini")), *linked):
        if path.exists():
            st = path.stat()
            stats.append([path.name, st.st_size, st.st_mtime_ns])
    return {"name": seq.name, "files": stats}


class VideoFramesDataModule(LightningDataModule):
    """Shared: read the manifest, index training and validation frames, build loaders.

    ``frame_cache_dir``: where the frames the data sets use are cached decoded (``data.frame_cache``), built in
    ``setup``; None reads every sample from the video (a seek per sample).
    """

    def __init__(self, root: str, image_size: int, every: int = 1, val_every: int = 10, batch_size: int = 8,
                 val_batch_size: int | None = None, num_workers: int = 0, hflip: bool = True,
                 vflip: bool = False, frame_cache_dir: str | None = None) -> None:
        super().__init__()
        self.root = Path(root)
        self.frame_cache_dir = frame_cache_dir
        self.image_size = int(image_size)
        self.every = whole_at_least_one(every, "every")
        self.val_every = whole_at_least_one(val_every, "val_every")
        if batch_size < 1:
            raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or batch_size)
        self.num_workers = int(num_workers)
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self.manifest: DatasetManifest | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def variants(self) -> list[Variant]:
        return variants_for(self.hflip, self.vflip)

    def _sequences(self, split: str) -> list[Sequence]:
        if self.manifest is None:
            self.manifest = DatasetManifest.read(self.root)
        seqs = self.manifest.sequences(self.root, split)
        if not seqs:
            raise DataFormatError(self.root / DatasetManifest.FILE, f"lists no {split!r} sequences")
        return seqs

    def _loader(self, dataset: Dataset, train: bool, collate) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size if train else self.val_batch_size, shuffle=train,
                          num_workers=self.num_workers, collate_fn=collate, persistent_workers=self.num_workers > 0,
                          drop_last=False)

    def frames_identity(self, split: str) -> dict[str, Any]:
        """Content identity of a split's frame list (keys the distillation teacher cache)."""
        dataset = self.train_set if split == "train" else self.val_set
        refs = np.asarray(dataset.refs, dtype=np.int64)
        return {"dataset": self.manifest.name, "sequences": [sequence_identity(s) for s in dataset.sequences],
                "frames": hashlib.sha256(refs.tobytes()).hexdigest()[:16], "count": len(refs)}


class FramesDataModule(VideoFramesDataModule):
    """Frames of the training videos (every ``every``-th) and of the evaluation videos (every ``val_every``-th).

    ``crop``: ``{enabled, scale: [lo, hi], ratio: [lo, hi]}`` random resized crops (training only).
    """

    def __init__(self, root: str, image_size: int, every: int = 1, val_every: int = 10, batch_size: int = 8,
                 val_batch_size: int | None = None, num_workers: int = 0, hflip: bool = True, vflip: bool = False,
                 crop: dict[str, Any] | None = None, frame_cache_dir: str | None = None) -> None:
        super().__init__(root, image_size, every, val_every, batch_size, val_batch_size, num_workers, hflip, vflip,
                         frame_cache_dir)
        crop = dict(crop or {})
        self.crop_enabled = bool(crop.get("enabled", False))
        self.crop = ((tuple(crop.get("scale", (0.5, 1.0))), tuple(crop.get("ratio", (0.75, 4 / 3))))
                     if self.crop_enabled else None)
        if self.crop_enabled and not 0 < self.crop[0][0] <= self.crop[0][1] <= 1:
            raise ConfigError("crop.scale", f"must be 0 < lo <= hi <= 1, got {self.crop[0]}")

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self._sequences("train"), self._sequences("eval")
        self.train_set = FramesDataset(train, _frame_refs(train, self.every), self.image_size, train=True,
                                       hflip=self.hflip, vflip=self.vflip, crop=self.crop,
                                       frame_cache=self.frame_cache_dir)
        self.val_set = FramesDataset(val, _frame_refs(val, self.val_every), self.image_size,
                                     frame_cache=self.frame_cache_dir)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, collate_frames)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, collate_frames)


def _frame_refs(seqs: Seq[Sequence], every: int) -> list[tuple[int, int]]:
    return [(i, f) for i, s in enumerate(seqs) for f in range(0, s.info.seq_length, every)]


def _box_labels(seqs: Seq[Sequence], every: int) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """Frames (every ``every``-th) that have at least one GT row with flag > 0, with their boxes and masks.

    ``rles`` holds each animal's mask, None where ``gt/masks.jsonl`` has none for it (or the file is absent): a
    label that is a box only. Whether such labels may train is the module's decision (``supervision``).
    """
    refs, labels = [], []
    for si, seq in enumerate(seqs):
        if not seq.has_gt():  # an unlabelled import: train on the sequences that have labels
            log.warning("fine-tuning leaves out sequence %s: no ground truth (%s not found)", seq.name, seq.gt_path)
            continue
        gt = seq.gt()
        gt = gt.select(gt.conf > 0)
        wanted = {}
        for frame, rows in gt.frame_slices():
            if (frame - 1) % every == 0:
                wanted[frame] = rows
        found: dict[int, dict[int, Any]] = {}
        if seq.has_masks():
            for frame, inst in rle.iter_masks(seq.masks_path):
                if frame in wanted:
                    found[frame] = inst
        for frame in sorted(wanted):
            rows, inst = wanted[frame], found.get(frame, {})
            refs.append((si, frame - 1))
            labels.append({"boxes": rows.xyxy.astype(np.float32), "ids": rows.track_id.copy(),
                           "rles": [inst.get(int(i)) for i in rows.track_id]})
    return refs, labels


def _unlabelled(seqs: Seq[Sequence]) -> str:
    missing = [f"{s.name} ({s.gt_path})" for s in seqs if not s.has_gt()]
    return f"; without ground truth: {', '.join(missing)}" if missing else ""


class BoxPromptDataModule(VideoFramesDataModule):
    """Frames with all their animals' GT boxes as prompts and GT masks (where labelled) as targets (see
    :class:`BoxPromptDataset`).

    Trains on the data set's training sequences (every ``every``-th frame with a labelled animal), validates on
    its evaluation sequences (every ``val_every``-th), with exact boxes and original-resolution masks. Frames
    without a labelled animal are never used.
    """

    def __init__(self, root: str, image_size: int, every: int = 1, val_every: int = 10, batch_size: int = 8,
                 val_batch_size: int | None = None, num_workers: int = 0, hflip: bool = True, vflip: bool = True,
                 box_jitter: float = 0.1, box_jitter_max_px: float = 20.0, frame_cache_dir: str | None = None) -> None:
        super().__init__(root, image_size, every, val_every, batch_size, val_batch_size, num_workers, hflip, vflip,
                         frame_cache_dir)
        if box_jitter < 0 or box_jitter_max_px < 0:
            raise ConfigError("box_jitter", "jitter must not be negative")
        self.box_jitter, self.box_jitter_max_px = float(box_jitter), float(box_jitter_max_px)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train, val = self._sequences("train"), self._sequences("eval")
        refs, labels = _box_labels(train, self.every)
        if not refs:
            raise DataFormatError(self.root, "the training sequences have no labelled (flag > 0) animal"
                                  + _unlabelled(train))
        self.train_set = BoxPromptDataset(train, refs, labels, self.image_size, train=True, hflip=self.hflip,
                                          vflip=self.vflip, box_jitter=self.box_jitter,
                                          box_jitter_max_px=self.box_jitter_max_px, frame_cache=self.frame_cache_dir)
        refs, labels = _box_labels(val, self.val_every)
        if not refs and self.val_every > 1:  # sparse labels (a few answered frames) may all miss the grid
            refs, labels = _box_labels(val, 1)
            if refs:
                log.warning("no labelled evaluation frame is on the val_every=%d grid: validating on all %d "
                            "labelled frames", self.val_every, len(refs))
        if not refs:
            raise DataFormatError(self.root, "the evaluation sequences have no labelled (flag > 0) animal to validate "
                                  "on" + _unlabelled(val))
        self.val_set = BoxPromptDataset(val, refs, labels, self.image_size, keep_original=True,
                                        frame_cache=self.frame_cache_dir)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, collate_prompts)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, collate_prompts)
