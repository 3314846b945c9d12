"""Grounding DINO as a labelling method (the paper's "Grounding DINO" row; with ``grounding_dino_manual`` its
"15/10" row): text-prompted boxes on every frame, identities carried by box IoU. Box-only labels (no masks)."""

from __future__ import annotations

import os

import numpy as np

from samqa_framework.annotate.association import box_iou_matrix, carry_ids
from samqa_framework.annotate.base import Annotator, FrameLabels, Instance
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.models.grounding_dino import GroundingDinoDetector
from samqa_framework.utils.errors import ConfigError, DataFormatError


class GroundingDinoAnnotator(Annotator):
    """The ``num_animals`` best Grounding DINO boxes for ``text`` on every frame, no person involved.

    ``text``: the prompt (e.g. "rat"); None: the data set's species (``dataset.yaml`` beside the sequence).
    ``num_animals``: boxes kept per frame; None: the count the run passes (the data set's), else the manifest's.
    Identities: each box takes the identity of the previous labelled frame's box it overlaps most (Hungarian on
    box IoU, pairs with IoU > ``min_iou``); an unmatched box gets a new identity. The previous frame is the one
    committed last, so under :class:`~samqa_framework.annotate.manual.MixedAnnotator` the boxes continue the
    identities of the manual frames. The score is the detector's. ``model_dir`` (a local ``save_pretrained``
    folder, nothing is downloaded), ``device``, ``box_threshold`` and ``nms_iou`` go to
    :class:`~samqa_framework.models.grounding_dino.GroundingDinoDetector`.
    """

    name = "grounding_dino"

    def __init__(self, model_dir: str | os.PathLike[str] | None, text: str | None = None, device: str = "cpu",
                 box_threshold: float = 0.0, nms_iou: float | None = None, min_iou: float = 0.0,
                 num_animals: int | None = None) -> None:
        super().__init__(num_animals)
        self.detector = GroundingDinoDetector(model_dir, device=device, box_threshold=box_threshold,
                                              nms_iou=nms_iou)
        self.text = text
        self.min_iou = float(min_iou)
        self.prompt: str | None = None

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        self.prompt = self.text
        if self.prompt is None or self.num_animals is None:
            try:
                manifest = DatasetManifest.read(sequence.root.parent)
            except DataFormatError as exc:
                missing = "text" if self.prompt is None else "num_animals"
                raise ConfigError(missing, f"not set, and {sequence.name} has no data set manifest to take it "
                                           f"from ({exc})") from exc
            self.prompt = self.prompt if self.prompt is not None else manifest.species
            self.num_animals = self.num_animals if self.num_animals is not None else int(manifest.num_animals)

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        boxes, scores = self.detector.detect(image, self.prompt, k=self.num_animals)
        prev = self.previous.instances if self.previous is not None else []
        iou = box_iou_matrix(np.stack([p.box for p in prev]) if prev else np.zeros((0, 4)), boxes)
        ids, _ = carry_ids([p.track_id for p in prev], iou, self.next_id, self.min_iou)
        return FrameLabels(frame, [Instance(i, box, float(score)) for i, box, score in
                                   zip(ids, boxes, scores, strict=True)])
