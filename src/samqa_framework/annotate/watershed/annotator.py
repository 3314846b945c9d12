"""The paper's "Segmentation & Watershed" baselines as an annotator (Table 2: U-Net, DeepLabv3, DINOv2).

Per frame: the segmentation net's foreground heatmap (:class:`SegmentationPredictor`) is split into at most the
known number of animals (:func:`~samqa_framework.annotate.watershed.postprocess.split_instances`), and each mask
takes the identity of the previous frame's mask it overlaps most (Hungarian on mask IoU). A mask that overlaps
none of them may take back an identity missing for at most ``memory`` frames (overlapping that identity's last
mask: an animal missed for a few frames, or merged with another, comes back under its own identity); any other
mask gets a new identity. Nobody is asked anything: no prompts, no interventions.

All state (the previous frame's labels, the lost identities' last instances, the next free identity) is kept by
:meth:`commit`, so a resumed run, which replays the stored frames through it, gives the labels of an
uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from samqa_framework.annotate.association import mask_iou_matrix, match
from samqa_framework.annotate.base import Annotator, FrameLabels, Instance, instance_from_mask
from samqa_framework.annotate.watershed.postprocess import WatershedParams, split_instances
from samqa_framework.data.sequence import Sequence
from samqa_framework.models.segmentation.checkpoint import export_info, own_model_config
from samqa_framework.models.segmentation.predictor import SegmentationPredictor
from samqa_framework.utils.errors import ConfigError


class HeatmapPredictor(Protocol):
    """``SegmentationPredictor``: (H, W) float foreground-minus-background logit of a (H, W, 3) uint8 BGR frame."""

    def heatmap(self, frame_bgr: np.ndarray) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow warnings


def _instance_mask(inst: Instance, shape: tuple[int, int]) -> np.ndarray:
    """An instance's mask; a box-only instance (e.g. a manual box without a mask) counts as its filled box."""
    if inst.mask is not None and inst.mask.shape == shape:
        return inst.mask
    out = np.zeros(shape, bool)
    x1, y1, x2, y2 = np.round(inst.box).astype(int)
    out[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    return out


class WatershedAnnotator(Annotator):
    """Segmentation heatmap -> watershed split into ``num_animals`` masks -> identities carried by mask IoU.

    ``predictor``: anything with ``heatmap(frame_bgr)`` (a :class:`SegmentationPredictor`).
    ``postprocess``: :class:`WatershedParams` or its mapping (``conf/postprocess/watershed.yaml``'s keys).
    ``num_animals``: masks per frame at most; None takes the data set's count (``start``).
    ``min_iou``: a mask keeps a previous identity only when their mask IoU is above this.
    ``memory``: an identity missing from up to this many consecutive frames can be taken back (0: only the
    previous frame's identities carry on).
    """

    def __init__(self, predictor: HeatmapPredictor, postprocess: WatershedParams | Mapping[str, Any] | None = None,
                 num_animals: int | None = None, min_iou: float = 0.0, memory: int = 30,
                 name: str = "watershed") -> None:
        super().__init__(num_animals)
        if self.num_animals is not None and self.num_animals < 1:
            raise ConfigError("num_animals", f"must be >= 1 (or null: the data set's count), got {num_animals}")
        if not 0.0 <= float(min_iou) < 1.0:
            raise ConfigError("min_iou", f"must be in [0, 1), got {min_iou}")
        if int(memory) != memory or memory < 0:
            raise ConfigError("memory", f"must be a whole number of frames >= 0, got {memory}")
        self.predictor = predictor
        try:
            self.params = (postprocess if isinstance(postprocess, WatershedParams)
                           else WatershedParams.from_mapping(dict(postprocess or {})))
        except ConfigError as exc:
            raise exc.under("postprocess") from exc
        self.min_iou = float(min_iou)
        self.memory = int(memory)
        self.lost: dict[int, tuple[int, Instance]] = {}  # identity -> (frame last seen, its instance there)
        self.name = str(name)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike[str] | None, net: str,
                        postprocess: WatershedParams | Mapping[str, Any] | None = None,
                        num_animals: int | None = None, min_iou: float = 0.0, memory: int = 30, device: str = "cpu",
                        name: str | None = None) -> WatershedAnnotator:
        """Load the segmentation net exported by ``samqa-train stage=segmentation model=<net>`` from ``checkpoint``.

        ``net``: the model config the export must hold (``conf/model/<net>.yaml``), so that a run named
        ``watershed_unet`` cannot label with a DeepLabv3 by mistake; the net is built from it, with the values the
        export's sidecar records (``SegmentationPredictor.load``).
        """
        hint = (f"the weights exported by `samqa-train stage=segmentation model={net} data=<data set>` "
                f"(its last line: model: .../seg_{net}.pt)")
        if checkpoint is None or str(checkpoint).strip() == "":
            raise ConfigError("checkpoint", f"not set: {hint}")
        model = own_model_config(net)
        _check_net(checkpoint, net, model, hint)
        predictor = SegmentationPredictor.load(checkpoint, model=model, device=device)
        return cls(predictor, postprocess, num_animals, min_iou, memory, name or f"watershed_{net}")

    def start(self, sequence: Sequence, num_animals: int | None = None) -> None:
        super().start(sequence, num_animals)
        if self.num_animals is None:
            raise ConfigError("num_animals", f"not set and {sequence.name}'s data set records no count: "
                                             "set the number of animals to split the foreground into")
        self.lost = {}

    def commit(self, labels: FrameLabels) -> None:
        if labels.labelled:
            present = {inst.track_id for inst in labels.instances}
            if self.previous is not None:
                for inst in self.previous.instances:
                    if inst.track_id not in present:
                        self.lost[inst.track_id] = (self.previous.frame, inst)
            self.lost = {i: (f, inst) for i, (f, inst) in self.lost.items()
                         if i not in present and labels.frame - f <= self.memory}
        super().commit(labels)

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        heat = np.asarray(self.predictor.heatmap(image), dtype=np.float32)
        if heat.shape != image.shape[:2]:
            raise ValueError(f"heatmap of frame {frame} is {heat.shape}, the frame {image.shape[:2]}")
        masks = split_instances(heat, self.num_animals, self.params)
        ids = self._identities(masks, frame)
        prob = _sigmoid(heat)
        instances = [instance_from_mask(i, m, float(prob[m].mean()), "auto") for i, m in zip(ids, masks, strict=True)]
        instances = sorted((inst for inst in instances if inst is not None), key=lambda inst: inst.track_id)
        return FrameLabels(frame, instances)

    def _identities(self, masks: list[np.ndarray], frame: int) -> list[int]:
        """Previous frame's identities first, then those lost within ``memory`` frames, then new ones."""
        ids = [-1] * len(masks)
        prev = [(p.track_id, p) for p in (self.previous.instances if self.previous is not None else [])]
        lost = [(i, inst) for i, (f, inst) in sorted(self.lost.items()) if frame - f - 1 <= self.memory]
        for candidates in (prev, lost):
            free = [c for c, value in enumerate(ids) if value < 0]
            if not free or not candidates:
                continue
            iou = mask_iou_matrix([_instance_mask(inst, masks[0].shape) for _, inst in candidates],
                                  [masks[c] for c in free])
            for r, c in match(iou.reshape(len(candidates), len(free)), self.min_iou):
                ids[free[c]] = candidates[r][0]
        next_id = self.next_id
        for c, value in enumerate(ids):
            if value < 0:
                ids[c], next_id = next_id, next_id + 1
        return ids


def _check_net(checkpoint: str | os.PathLike[str], net: str, model: Mapping[str, Any], hint: str) -> None:
    """The export's recorded model (sidecar) must be ``conf/model/<net>.yaml``'s net (same ``_target_``)."""
    if not os.path.isfile(checkpoint):
        return  # SegmentationPredictor.load names the missing file
    recorded = ((export_info(checkpoint).get("meta") or {}).get("model") or {}).get("_target_")
    expected = model.get("_target_")
    if isinstance(recorded, str) and expected and recorded != expected:
        raise ConfigError("checkpoint", f"{checkpoint} holds a {recorded.rsplit('.', 1)[-1]}, not the {net} "
                                        f"({expected.rsplit('.', 1)[-1]}) this annotator is for: pass {hint}, or "
                                        "pick the annotator of that net")
