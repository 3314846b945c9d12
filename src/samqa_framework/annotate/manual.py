"""Human labels as an annotation method: the paper's "Manual Annotation" row of Table 2."""

from __future__ import annotations

import numpy as np

from samqa_framework.data.mot import MotTable
from samqa_framework.data.sequence import Sequence


class ManualAnnotator:
    """Labels = the sequence's ground truth (rows flagged as ignored are left out).

    ``every`` keeps only every Nth frame, the labelling budget of a person who annotates sparsely.
    """

    name = "manual"

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"annotator.every must be >= 1, got {every}")
        self.every = int(every)

    def annotate(self, sequence: Sequence) -> MotTable:
        gt = sequence.gt()
        keep = (gt.conf > 0) & ((gt.frame - 1) % self.every == 0)
        return gt.select(np.asarray(keep))
