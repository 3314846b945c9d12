"""Label quality against ground truth: what a label set is worth before any tracker is trained on it.

Per frame, labels and visible ground-truth animals are matched one-to-one by box IoU (Hungarian, IoU >= 0.5
counts as a match, CLEAR-MOT style). Every ground-truth animal counts: a missed one adds IoU 0, so the means
measure coverage and precision of the boxes together. An identity switch is a ground-truth animal matched to
another label identity than at its previous match (CLEAR-MOT's IDSW), i.e. what the tracker will learn wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samqa_framework.annotate.association import box_iou_matrix, match
from samqa_framework.annotate.base import FrameLabels
from samqa_framework.data import rle

MATCH_IOU = 0.5


@dataclass
class LabelQuality:
    """Streaming accumulator: :meth:`update` per frame, :meth:`result` at the end."""

    frames: int = 0
    labelled_frames: int = 0
    gt_instances: int = 0
    label_instances: int = 0
    matched: int = 0
    box_iou_sum: float = 0.0
    mask_iou_sum: float = 0.0
    mask_gt_instances: int = 0
    id_switches: int = 0
    interventions: int = 0
    prompts: int = 0
    recoveries: int = 0
    frames_corrected: int = 0
    frames_recovered: int = 0
    any_label_mask: bool = False
    _last_match: dict[int, int] = field(default_factory=dict)

    def update(self, labels: FrameLabels, gt: FrameLabels) -> None:
        """Add one frame. Frames the method skipped (``labelled`` False) count for the costs only."""
        self.frames += 1
        self.interventions += labels.interventions
        self.prompts += labels.prompts
        self.recoveries += labels.recoveries
        self.frames_corrected += int(labels.interventions > 0)
        self.frames_recovered += int(any(i.source == "recovered" for i in labels.instances))
        if not labels.labelled:
            return
        self.labelled_frames += 1
        self.gt_instances += len(gt.instances)
        self.label_instances += len(labels.instances)
        self.any_label_mask |= any(i.has_mask for i in labels.instances)
        if not gt.instances:
            return
        self.mask_gt_instances += sum(g.has_mask for g in gt.instances)
        if not labels.instances:
            return
        iou = box_iou_matrix(np.stack([g.box for g in gt.instances]), np.stack([i.box for i in labels.instances]))
        for r, c in match(iou, MATCH_IOU - 1e-9):
            g, lab = gt.instances[r], labels.instances[c]
            self.matched += 1
            self.box_iou_sum += iou[r, c]
            if g.has_mask and lab.has_mask:  # on the run lengths: a stored mask is never decoded here
                a, b = g.encoded_mask(), lab.encoded_mask()
                if a["size"] == b["size"]:
                    self.mask_iou_sum += rle.iou(a, b)
            last = self._last_match.get(g.track_id)
            if last is not None and last != lab.track_id:
                self.id_switches += 1
            self._last_match[g.track_id] = lab.track_id

    def result(self) -> dict[str, Any]:
        n = max(self.gt_instances, 1)
        return {
            "frames": self.frames,
            "labelled_frames": self.labelled_frames,
            "mean_box_iou": self.box_iou_sum / n,
            "mean_mask_iou": (self.mask_iou_sum / max(self.mask_gt_instances, 1)
                              if self.any_label_mask and self.mask_gt_instances else None),
            "id_switches": self.id_switches,
            "recall": self.matched / n,
            "precision": self.matched / max(self.label_instances, 1),
            "interventions": self.interventions,
            "interventions_per_100_frames": 100.0 * self.interventions / max(self.frames, 1),
            "prompts": self.prompts,
            "recoveries": self.recoveries,
            "frames_corrected": self.frames_corrected,
            "frames_recovered": self.frames_recovered,
            "gt_instances": self.gt_instances,
            "label_instances": self.label_instances,
        }


def format_quality(name: str, q: dict[str, Any]) -> str:
    """One-method markdown table of a quality report."""
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    keys = ["frames", "mean_box_iou", "mean_mask_iou", "id_switches", "recall", "precision",
            "interventions_per_100_frames", "frames_corrected", "frames_recovered"]
    return "\n".join([f"| method | {' | '.join(keys)} |", "|" + "---|" * (len(keys) + 1),
                      f"| {name} | {' | '.join(fmt(q[k]) for k in keys)} |"])
