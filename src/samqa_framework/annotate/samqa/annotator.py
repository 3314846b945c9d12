"""The SAM-QA loop (paper Fig. 1): initialise with manual prompts, carry box prompts frame to frame, clean,
associate, check; on failure recover once automatically, then ask a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from samqa_framework.annotate.association import mask_iou_matrix, match
from samqa_framework.annotate.base import Annotator, FrameLabels, Instance, mask_box
from samqa_framework.annotate.prompts import PromptProvider
from samqa_framework.annotate.samqa.checks import failing_ids
from samqa_framework.annotate.samqa.cleanup import CleanupParams, clean_mask, separate_masks
from samqa_framework.annotate.samqa.recovery import recovery_prompt
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError, check_number


class MaskPredictor(Protocol):
    """``SamMaskPredictor`` (light SAM) or ``Sam2PointPredictor`` (SAM 2 image predictor)."""

    def predict_boxes(self, frame: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def predict_points(self, frame: np.ndarray, points: np.ndarray,
                       labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class SamQaAnnotator(Annotator):
    """SAM-QA with a box-prompted ``predictor`` and a ``prompts`` provider for the manual prompts.

    ``qa``: ``overlap_thresh``, ``size_ratio`` [lo, hi], ``recovery`` (bool), ``recovery_grid`` (n: n x n points),
    ``cleanup`` (see :mod:`.cleanup`), ``box_margin`` (the carried box grows by this fraction of its side on each
    edge, room for motion), ``recheck_missing`` (with ``num_animals`` known: while fewer animals are labelled,
    ask a person again after this many frames; 0 disables the count condition).
    ``separate`` (default true): after the checks pass, pixels claimed by two masks go to one animal
    (:func:`.cleanup.separate_masks`). ``probe_lost`` (default true): an animal missing from the labels (hidden,
    e.g. in the tunnel) is prompted at its last box every frame; it is back, without a person, when that mask
    passes the size check against its reference and overlaps no other animal beyond ``overlap_thresh``.
    ``refine_passes`` (0 when absent; ``conf/qa`` sets 1): re-prompt each cleaned mask with its own tight box this
    many times before the checks (decoder only: the frame's embedding is reused). A pass that returns an empty
    mask keeps the mask it started from.
    ``recovery_reassociate`` (default false): after recovery, all masks go through association again before the
    checks (the paper's Fig. 1: recovery returns to association); false keeps each recovered mask on the identity
    it was recovered for and returns to the checks only.
    ``recovery_predictor``: the model of the grid-point recovery (SAM 2's image predictor when configured);
    None uses ``predictor``.
    """

    name = "samqa"

    def __init__(self, predictor: MaskPredictor, prompts: PromptProvider, qa: Mapping[str, Any],
                 recovery_predictor: MaskPredictor | None = None, num_animals: int | None = None) -> None:
        super().__init__(num_animals)
        self.predictor = predictor
        self.recovery_predictor = recovery_predictor or predictor
        self.prompts = prompts
        self.overlap_thresh = check_number("qa.overlap_thresh", qa["overlap_thresh"], 0, 1)  # a mask IoU
        self.size_ratio = tuple(float(v) for v in qa["size_ratio"])
        if len(self.size_ratio) != 2 or not 0 <= self.size_ratio[0] <= 1 <= self.size_ratio[1]:
            raise ConfigError("qa.size_ratio", f"must be [lo, hi] with lo <= 1 <= hi, got {list(qa['size_ratio'])}")
        self.recovery = bool(qa.get("recovery", True))
        self.grid = check_number("qa.recovery_grid", qa.get("recovery_grid", 4), 1, integer=True)
        self.cleanup = CleanupParams(**dict(qa.get("cleanup") or {}))
        self.box_margin = check_number("qa.box_margin", qa.get("box_margin", 0.0), 0)
        self.recheck_missing = check_number("qa.recheck_missing", qa.get("recheck_missing", 0), 0, integer=True)
        self.separate = bool(qa.get("separate", True))
        self.probe_lost = bool(qa.get("probe_lost", True))
        self.recovery_reassociate = bool(qa.get("recovery_reassociate", False))
        self.refine_passes = check_number("qa.refine_passes", qa.get("refine_passes", 0), 0, integer=True)
        self.size = (0, 0)

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        self.prompts.start(sequence)
        self.size = (sequence.info.width, sequence.info.height)
        self.reference_area: dict[int, float] = {}
        self.last_manual = 0
        self.last_seen: dict[int, tuple[int, np.ndarray]] = {}  # identity -> (frame, box) where last labelled

    def attach(self, store: LabelStore) -> None:
        self.prompts.attach(store)

    def close(self) -> None:
        try:
            self.prompts.close()
        finally:  # the encode-ahead worker stops however the run ends
            for predictor in {id(p): p for p in (self.predictor, self.recovery_predictor)}.values():
                if close := getattr(predictor, "close", None):
                    close()

    def prefetch(self, image: np.ndarray) -> None:
        # the next frame's embedding does not depend on this frame's labels (its box prompts do)
        if prefetch := getattr(self.predictor, "prefetch", None):
            prefetch(image)

    # -- state (rebuilt from the store on resume) --------------------------------------------------------------
    def commit(self, labels: FrameLabels) -> None:
        super().commit(labels)
        if labels.interventions:
            self.last_manual = labels.frame
        for inst in labels.instances:
            self.last_seen[inst.track_id] = (labels.frame, inst.box)
            if inst.source == "manual":
                self.reference_area[inst.track_id] = inst.area

    # -- one frame ---------------------------------------------------------------------------------------------
    def _carry_box(self, box: np.ndarray) -> np.ndarray:
        w, h = self.size
        x1, y1, x2, y2 = box
        mx, my = self.box_margin * (x2 - x1), self.box_margin * (y2 - y1)
        return np.array([max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, w), min(y2 + my, h)])

    def _clean(self, masks: np.ndarray) -> list[np.ndarray]:
        return [clean_mask(m, self.cleanup) for m in masks]

    def _refine(self, image: np.ndarray, masks: list[np.ndarray], scores: np.ndarray
                ) -> tuple[list[np.ndarray], np.ndarray]:
        """Re-prompt with each mask's tight box. The carried box is loose (``box_margin`` plus the motion since
        the last frame) while the model learned from boxes near the animal's own, so the tight box's mask is
        usually closer to the animal's outline."""
        masks, scores = list(masks), np.array(scores, dtype=np.float32)
        for _ in range(self.refine_passes):
            keep = [k for k, m in enumerate(masks) if m.any()]
            if not keep:
                break
            new, new_scores = self.predictor.predict_boxes(image, np.stack([mask_box(masks[k]) for k in keep]))
            for k, mask, score in zip(keep, self._clean(new), new_scores, strict=True):
                if mask.any():  # a tight box that loses the animal must not turn a found animal into a lost one
                    masks[k], scores[k] = mask, score
        return masks, scores

    def _manual(self, frame: int, image: np.ndarray, current: FrameLabels | None, recoveries: int) -> FrameLabels:
        """A person's boxes (the prompt provider), segmented: the box is the label, the mask what is carried on."""
        boxes = self.prompts.boxes(frame, image, current)
        ids = sorted(boxes)
        instances = []
        if ids:
            masks, scores = self.predictor.predict_boxes(image, np.stack([boxes[i] for i in ids]))
            for i, mask, score in zip(ids, self._clean(masks), scores, strict=True):
                instances.append(Instance(i, boxes[i], float(score), "manual", mask if mask.any() else None))
        return FrameLabels(frame, instances, prompts=len(ids), interventions=1, recoveries=recoveries)

    def _associate(self, prev: list[Instance], masks: list[np.ndarray], scores: np.ndarray
                   ) -> dict[int, tuple[np.ndarray, float]]:
        """Identity of each new mask: Hungarian on mask IoU with the previous frame's masks (a mask that overlaps
        no previous one keeps the identity whose box prompted it)."""
        prev_masks = [p.mask if p.mask is not None else np.zeros(masks[0].shape, bool) for p in prev]
        owner = [p.track_id for p in prev]
        for r, c in match(mask_iou_matrix(prev_masks, masks)):
            owner[c] = prev[r].track_id
        if len(set(owner)) < len(owner):  # a partial match must not give two masks one identity
            owner = [p.track_id for p in prev]
        return {i: (m, float(s)) for i, m, s in zip(owner, masks, scores, strict=True)}

    def _fails(self, current: Mapping[int, tuple[np.ndarray, float]]) -> dict[int, str]:
        return failing_ids({i: m for i, (m, _) in current.items()}, self.reference_area, self.overlap_thresh,
                           self.size_ratio)

    def _recover(self, image: np.ndarray, prev: Mapping[int, Instance], current: dict[int, tuple[np.ndarray, float]],
                 fails: Mapping[int, str]) -> set[int]:
        w, h = self.size
        recovered = set()
        for i in fails:
            others = {j: m for j, (m, _) in current.items() if j != i and j not in fails}
            points, labels = recovery_prompt(self._carry_box(prev[i].box), prev[i].mask, others, self.grid, w, h)
            masks, scores = self.recovery_predictor.predict_points(image, points[None], labels[None])
            current[i] = (clean_mask(masks[0], self.cleanup), float(scores[0]))
            recovered.add(i)
        return recovered

    def _reassociate(self, prev: list[Instance], current: dict[int, tuple[np.ndarray, float]], recovered: set[int]
                     ) -> tuple[dict[int, tuple[np.ndarray, float]], set[int]]:
        """The carried animals' masks, recovered ones included, matched to the previous frame's again (the paper's
        loop); probed animals keep their identity. Returns the new identities and which of them hold a recovered
        mask."""
        ids = [p.track_id for p in prev]
        masks = [current[i][0] for i in ids]
        scores = np.array([current[i][1] for i in ids], dtype=np.float32)
        from_recovery = {id(current[i][0]) for i in recovered}
        again = self._associate(prev, masks, scores)
        out = {**{i: v for i, v in current.items() if i not in ids}, **again}
        return out, {i for i, (m, _) in again.items() if id(m) in from_recovery}

    def _lost(self, present: set[int]) -> list[int]:
        """Identities seen before but not in the last labels, most recently seen first (at most the number of
        animals still missing, when the count is known)."""
        lost = sorted((i for i in self.last_seen if i not in present), key=lambda i: -self.last_seen[i][0])
        if self.num_animals is not None:
            lost = lost[: max(self.num_animals - len(present), 0)]
        return lost

    def _accept_probe(self, i: int, mask: np.ndarray, current: Mapping[int, tuple[np.ndarray, float]]) -> bool:
        ref = self.reference_area.get(i)
        area = float(mask.sum())
        if not area or not ref or not self.size_ratio[0] <= area / ref <= self.size_ratio[1]:
            return False
        others = [m for m, _ in current.values()]
        return not others or mask_iou_matrix([mask], others).max() <= self.overlap_thresh

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        prev = self.previous
        if prev is None:
            return self._manual(frame, image, None, 0)
        if not prev.instances:  # nothing visible at the last look: look again after recheck_missing frames
            if frame - self.last_manual >= max(self.recheck_missing, 1):
                return self._manual(frame, image, None, 0)
            return FrameLabels(frame)
        lost = self._lost({p.track_id for p in prev.instances}) if self.probe_lost else []
        boxes = np.stack([self._carry_box(p.box) for p in prev.instances]
                         + [self._carry_box(self.last_seen[i][1]) for i in lost])
        masks, scores = self.predictor.predict_boxes(image, boxes)  # carried and probe prompts: one decoder call
        masks, scores = self._refine(image, self._clean(masks), scores)
        n = len(prev.instances)
        current = self._associate(prev.instances, masks[:n], scores[:n])
        fails = self._fails(current)
        probed = set()
        for i, mask, score in zip(lost, masks[n:], scores[n:], strict=True):
            if self._accept_probe(i, mask, current):
                current[i] = (mask, float(score))
                probed.add(i)
        first_fails = dict(fails)
        recovered: set[int] = set()
        recoveries = 0
        if fails and self.recovery:
            recoveries = 1
            recovered = self._recover(image, prev.by_id(), current, fails)
            if self.recovery_reassociate:
                current, recovered = self._reassociate(prev.instances, current, recovered)
            fails = self._fails(current)
        recovered |= probed
        if self.separate and not fails:
            prev_masks = {p.track_id: p.mask for p in prev.instances}
            separated = separate_masks({i: m for i, (m, _) in current.items()}, prev_masks)
            current = {i: (separated[i], s) for i, (_, s) in current.items()}
        instances = []
        for i, (mask, score) in current.items():
            box = mask_box(mask)
            if box is not None:
                instances.append(Instance(i, box, score, "recovered" if i in recovered else "auto", mask))
        labels = FrameLabels(frame, instances, recoveries=recoveries, failed=first_fails)
        missing = (self.recheck_missing and self.num_animals and len(instances) < self.num_animals
                   and frame - self.last_manual >= self.recheck_missing)
        if fails or missing:
            manual = self._manual(frame, image, labels, recoveries)
            manual.failed = {**first_fails, **({0: "count"} if missing and not fails else {})}
            return manual
        return labels
