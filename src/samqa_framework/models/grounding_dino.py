"""Text-prompted boxes from Grounding DINO (Hugging Face ``transformers``), loaded from a local folder only.

The folder is what ``save_pretrained`` writes for the model and its processor (e.g. a local copy of
``IDEA-Research/grounding-dino-tiny``: ``config.json``, weights, ``preprocessor_config.json`` / processor config
and the BERT tokenizer files). Nothing is downloaded: loading uses ``local_files_only=True``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torchvision.ops import nms

from samqa_framework.models.hf_folder import check_hf_folder
from samqa_framework.models.mask_predictor import as_rgb_uint8
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.offline import configure_offline

MODEL_TYPE = "grounding-dino"


def normalize_prompt(text: str) -> str:
    """Grounding DINO was trained on lower-case phrases each ending with a period ("rat." / "a rat. a tail.")."""
    text = " ".join(str(text).lower().split())
    if not text:
        raise ValueError("the text prompt is empty")
    return text if text.endswith(".") else text + "."


class GroundingDinoDetector:
    """The ``k`` best boxes for a text prompt in a frame.

    ``box_threshold``: minimum score (a query's highest sigmoid over the prompt's tokens, as Grounding DINO's
    own inference) of a kept box. ``nms_iou``: if set, boxes overlapping a better one by more than this IoU are
    dropped before taking the ``k`` best (off by default: DETR-style queries rarely duplicate).
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None, device: str = "cpu", box_threshold: float = 0.0,
                 nms_iou: float | None = None) -> None:
        self.model_dir = check_hf_folder(model_dir, MODEL_TYPE, "Grounding DINO", "IDEA-Research/grounding-dino-tiny",
                                         "model_dir")
        configure_offline()
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        self.device = torch.device(device)
        self.box_threshold = float(box_threshold)
        self.nms_iou = nms_iou
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError("model_dir", f"{self.model_dir}: cannot load the Grounding DINO processor (image "
                                           f"processor and tokenizer): {exc}") from exc
        try:
            self.model = GroundingDinoForObjectDetection.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError("model_dir", f"{self.model_dir}: cannot load the Grounding DINO weights: {exc}") from exc
        self.model.to(self.device).eval()

    def detect(self, frame_bgr: np.ndarray, text: str, k: int,
               bgr: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``boxes`` (k', 4) float32 ``x1, y1, x2, y2`` in frame pixels (clipped to the frame) and ``scores`` (k',)
        float32, best first, k' <= k: the boxes scoring above ``box_threshold`` for ``text`` (e.g. "rat")."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        rgb = as_rgb_uint8(frame_bgr, bgr)
        h, w = rgb.shape[:2]
        inputs = self.processor(images=rgb, text=normalize_prompt(text), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        result = self.processor.post_process_grounded_object_detection(
            outputs, input_ids=inputs["input_ids"], threshold=self.box_threshold, text_threshold=0.0,
            target_sizes=[(h, w)])[0]
        boxes = result["boxes"].float().cpu()
        scores = result["scores"].float().cpu()
        # Queries may extend past the image (centre +- half size); prompts for SAM must lie inside it.
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[keep], scores[keep]
        if self.nms_iou is not None and len(boxes):
            keep = nms(boxes, scores, float(self.nms_iou))  # sorted by score
        else:
            keep = torch.argsort(scores, descending=True, stable=True)
        keep = keep[:k]
        return boxes[keep].numpy().astype(np.float32), scores[keep].numpy().astype(np.float32)
