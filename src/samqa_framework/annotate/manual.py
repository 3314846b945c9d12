"""Human labels as a method (the paper's "Manual Annotation" row of Table 2), and any method mixed with them
(the paper's "15/10" rows: manual labels replace every Nth frame of the method's)."""

from __future__ import annotations

import numpy as np

from samqa_framework.annotate.base import Annotator, FrameLabels
from samqa_framework.annotate.ground_truth import GroundTruthFrames
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError


def _check_every(every: int) -> int:
    if int(every) != every or every < 1:
        raise ConfigError("every", f"must be an integer >= 1, got {every}")
    return int(every)


class ManualAnnotator(Annotator):
    """Labels = the sequence's ground truth (rows flagged 0 are left out), on every ``every``-th frame.

    Each labelled frame costs one intervention (a person labels it). Other frames are skipped, not empty.
    """

    name = "manual"

    def __init__(self, every: int = 1) -> None:
        super().__init__()
        self.every = _check_every(every)
        self._gt: GroundTruthFrames | None = None

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        self._gt = GroundTruthFrames(sequence)

    def manual_labels(self, frame: int) -> FrameLabels:
        labels = self._gt.labels(frame, source="manual")
        labels.prompts, labels.interventions = len(labels.instances), 1
        return labels

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if (frame - 1) % self.every:
            return FrameLabels(frame, labelled=False)
        return self.manual_labels(frame)


class MixedAnnotator(Annotator):
    """``base`` on every frame except every ``every``-th, which a person labels (ground truth) instead.

    The manual frames are committed to ``base`` too, so a stateful method continues from the corrected labels.
    """

    def __init__(self, base: Annotator, every: int) -> None:
        super().__init__()
        self.base = base
        self.manual = ManualAnnotator(every)
        self.name = f"{base.name}+manual{self.manual.every}"

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        try:
            self.base.start(sequence, num_animals)
        except ConfigError as exc:  # the base method's own argument, e.g. its num_animals
            raise exc.under("base") from exc
        self.manual.start(sequence, num_animals)

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if (frame - 1) % self.manual.every == 0:
            return self.manual.manual_labels(frame)
        return self.base.step(frame, image)

    def commit(self, labels: FrameLabels) -> None:
        super().commit(labels)
        self.base.commit(labels)

    def close(self) -> None:
        self.base.close()
