"""Run an annotator over a sequence: stream frames, store each frame durably, resume after a crash, report.

Frames are read lazily from where the store stops, so a restart costs no recomputation and the labels equal an
uninterrupted run's (the annotator's state is rebuilt by replaying the stored frames through ``commit``).

Overlapping work (the same frames in the same order, so the same labels): ``read_ahead`` > 0 decodes up to that
many frames ahead on a reader thread (:class:`~samqa_framework.data.video.ReadAhead`); ``encode_ahead`` hands the
annotator the next frame before each step (:meth:`Annotator.prefetch`: SAM-QA encodes it while it finishes the
current frame, whose box prompts the next frame needs but whose embedding it does not).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from samqa_framework.annotate.base import Annotator, FrameLabels
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.annotate.label_set import LabelSetWriter
from samqa_framework.annotate.quality import LabelQuality, format_quality
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.mot import MotTable
from samqa_framework.data.preview import draw_labels
from samqa_framework.data.sequence import Sequence
from samqa_framework.data.video import VideoWriter, iter_frames
from samqa_framework.utils.errors import DataFormatError, check_number
from samqa_framework.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class AnnotationResult:
    out_dir: Path
    labels: Path            # MOT labels.txt
    masks: Path             # masks.jsonl
    frames: int
    counts: dict[str, int]  # prompts, interventions, recoveries over the whole sequence
    quality: dict[str, Any] | None  # label_quality.json's content, when the sequence has ground truth


def annotate_sequence(annotator: Annotator, sequence: Sequence, out_dir: str | os.PathLike[str],
                      fingerprint: Mapping[str, Any] | None = None, max_frames: int | None = None,
                      progress: bool = True, overlay: bool = False, num_animals: int | None = None,
                      read_ahead: int = 0, encode_ahead: bool = False) -> AnnotationResult:
    """Annotate ``sequence`` into ``out_dir`` (resuming a previous run of the same fingerprint there).

    ``max_frames`` stops early (a prefix of the sequence, e.g. for quick runs). ``overlay`` also writes
    ``overlay.mp4`` (labels drawn on the frames). ``read_ahead`` / ``encode_ahead``: overlap decoding and the
    image encoder with the rest of the loop (module docstring; labels unchanged). Raises whatever the annotator
    raises (e.g. ``PromptsNeeded``); every frame finished before that is already on disk.
    """
    if sequence.gt_path.is_file():
        sequence.gt()  # frames and ground truth must agree before any work (names the file at fault)
    frames = sequence.frames()
    if max_frames is not None:
        max_frames = check_number("max_frames", max_frames, 1, integer=True)  # a prefix of at least one frame
    total = sequence.info.seq_length if max_frames is None else min(max_frames, sequence.info.seq_length)
    read_ahead = check_number("read_ahead", read_ahead, 0, integer=True)
    annotator.start(sequence, num_animals)
    try:  # after start: a method that cannot run here leaves no store behind
        store = LabelStore(out_dir, fingerprint)
    except BaseException:
        annotator.close()
        raise
    with store:  # the store's lock is released however the run ends
        return _annotate(annotator, sequence, store, frames, total, progress, overlay, read_ahead, encode_ahead)


def _with_next(images: Iterator[Any], encode_ahead: bool) -> Iterator[tuple[Any, Any]]:
    """``(image, next image or None)`` pairs. Without ``encode_ahead`` the next image is not read before its turn (as
    ever). With it, an error reading the next image is raised only after the current one is yielded, so the frames
    before a bad one are labelled and stored as inline."""
    if not encode_ahead:
        for image in images:
            yield image, None
        return
    current = next(images, None)
    while current is not None:
        try:
            upcoming = next(images, None)
        except Exception:
            yield current, None
            raise
        yield current, upcoming
        current = upcoming


def _annotate(annotator: Annotator, sequence: Sequence, store: LabelStore, frames: Any, total: int,
              progress: bool, overlay: bool, read_ahead: int = 0, encode_ahead: bool = False) -> AnnotationResult:
    interventions = 0
    done = 0
    try:  # from attach on, the annotator is closed whatever happens (a prompt provider's server stops with the run)
        annotator.attach(store)
        for labels in store.records():
            if done >= total:
                break
            annotator.commit(labels)
            done += 1
        if done:
            log.info("%s: resuming %s at frame %d of %d", annotator.name, sequence.name, done + 1, total)
        bar = tqdm(total=total, initial=done, desc=f"{annotator.name} {sequence.name}", unit="frame",
                   disable=not progress, dynamic_ncols=True)
        images = iter_frames(frames, done, total, read_ahead)
        with bar, contextlib.closing(images):  # the reader thread stops (and the decoder is released) however it ends
            for index, (image, upcoming) in enumerate(_with_next(images, encode_ahead), start=done):
                if upcoming is not None:
                    annotator.prefetch(upcoming)
                labels = annotator.step(index + 1, image)
                store.append(labels)
                annotator.commit(labels)
                bar.update(1)
                done += 1
                if labels.interventions:
                    interventions += labels.interventions
                    bar.set_postfix(interventions_this_run=interventions, refresh=False)
    finally:
        annotator.close()
    if done < total:  # the decoder ran out before the frame count the sequence (and its ground truth) claim
        raise DataFormatError(getattr(frames, "path", sequence.root), f"video ended after {done} frames; "
                              f"{sequence.name} should have {total} (labels up to frame {done} are kept)")
    return finish_labels(store, sequence, annotator.name, total, overlay)


def finish_labels(store: LabelStore, sequence: Sequence, name: str, total: int, overlay: bool = False
                  ) -> AnnotationResult:
    """One pass over the store's first ``total`` frames, corrections applied: the label set's export, the costs, the
    label quality (``label_quality.json`` / ``.md``, when the sequence has ground truth) and the overlay video,
    together. Masks stay encoded except where the overlay draws them. The review page calls it after each fix."""
    counts = {"prompts": 0, "interventions": 0, "recoveries": 0}
    stored = 0
    gt = GroundTruthFrames(sequence) if sequence.gt_path.is_file() else None
    quality = LabelQuality()
    info = sequence.info
    with contextlib.ExitStack() as stack:
        export = stack.enter_context(LabelSetWriter(store.root, sequence=sequence))
        video = (stack.enter_context(VideoWriter(store.root / "overlay.mp4", fps=info.frame_rate,
                                                 size=(info.width, info.height))) if overlay else None)
        images = sequence.frames().iter_range(0, total) if overlay else None
        for labels in store.records(corrected=True):
            if labels.frame > total:
                break
            stored += 1
            counts["prompts"] += labels.prompts
            counts["interventions"] += labels.interventions
            counts["recoveries"] += labels.recoveries
            export.add(labels)
            if gt is not None:
                quality.update(labels, gt.labels(labels.frame))
            if video is not None:
                masks = {i.track_id: i.encoded_mask() for i in labels.instances if i.has_mask}
                video.write(draw_labels(next(images), _rows(labels), masks))
    report = None
    if gt is None:
        log.info("%s: no label-quality report (no ground truth: %s not found)", sequence.name, sequence.gt_path)
    else:
        report = {"method": name, "sequence": sequence.name, **quality.result()}
        atomic_write_json(store.root / "label_quality.json", report)
        atomic_write_text(store.root / "label_quality.md", format_quality(name, report) + "\n")
    return AnnotationResult(store.root, export.labels_path, export.masks_path, stored, counts, report)


def _rows(labels: FrameLabels) -> MotTable:
    insts = labels.instances
    boxes = [[i.box[0], i.box[1], i.box[2] - i.box[0], i.box[3] - i.box[1]] for i in insts]
    return MotTable([labels.frame] * len(insts), [i.track_id for i in insts], boxes)
