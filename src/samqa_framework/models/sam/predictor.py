"""Box / point prompted masks of the light SAM for video frames, one image-encoder pass per frame.

Resizing to the encoder's input size (longest side -> ``img_size``, then padding) is segment-anything's
``SamPredictor``'s job; frame handling and prompt checks are :class:`MaskPredictorBase`'s.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

from samqa_framework.models.mask_predictor import MaskPredictorBase
from samqa_framework.models.sam.runtime import apply_decoder_runtime, apply_runtime


class SamMaskPredictor(MaskPredictorBase):
    """Prompted SAM masks for frames, caching the frame's image embedding (see :class:`MaskPredictorBase`).

    ``sam`` is moved to ``device`` and put in eval mode. With ``fuse`` an encoder that supports it
    (``TimmEncoder.fuse_for_inference``) is fused in place for speed: the predictor then owns the model, which can
    no longer be trained. ``embedding_cache_mb``, ``ahead_threads``: see :class:`MaskPredictorBase`. ``runtime``
    (``eager`` | ``onnxruntime`` | ``onnxruntime_int8``), ``runtime_threads``, ``runtime_cache_dir``,
    ``runtime_strict``: where the image encoder runs (:func:`samqa_framework.models.sam.runtime.apply_runtime`; CPU
    only, so ignored on another device); with ``runtime_decoder`` the mask decoder runs there too, in float32
    (:func:`~samqa_framework.models.sam.runtime.apply_decoder_runtime`).
    """

    def __init__(self, sam: Sam, device: str = "cpu", multimask: bool = False, fuse: bool = True,
                 embedding_cache_mb: float = 0, runtime: str = "eager", runtime_threads: int | None = None,
                 runtime_cache_dir: str = "outputs/cache/onnx", runtime_strict: bool = False,
                 ahead_threads: int | None = None, runtime_decoder: bool = True) -> None:
        super().__init__(multimask, embedding_cache_mb, ahead_threads)
        if fuse and hasattr(sam.image_encoder, "fuse_for_inference"):
            sam.image_encoder.fuse_for_inference()
        if torch.device(device).type == "cpu":
            sam.image_encoder = apply_runtime(sam.image_encoder.eval(), sam.image_encoder.img_size, runtime,
                                              runtime_threads, runtime_cache_dir, runtime_strict)
            if runtime_decoder:
                sam.mask_decoder = apply_decoder_runtime(
                    sam.mask_decoder.eval(), sam.prompt_encoder.image_embedding_size[0], multimask, runtime,
                    runtime_threads, runtime_cache_dir, runtime_strict)
        self.sam = sam.to(device).eval()
        self.device = torch.device(device)
        self._predictor = SamPredictor(self.sam)
        self._detached = SamPredictor(self.sam)  # the prefetch worker's: same model, its own frame state

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return tuple(self._predictor.original_size) if self._predictor.is_image_set else None

    def _encode(self, rgb: np.ndarray) -> None:
        self._predictor.set_image(rgb, image_format="RGB")

    def _memo_model(self) -> Sam:
        return self.sam

    def _embedding_state(self) -> tuple[tuple, int]:
        p = self._predictor
        return (p.features, p.original_size, p.input_size), p.features.numel() * p.features.element_size()

    def _encode_detached(self, rgb: np.ndarray) -> tuple:
        p = self._detached
        p.set_image(rgb, image_format="RGB")
        state = (p.features, p.original_size, p.input_size)
        p.reset_image()  # the state now belongs to whoever adopts it
        return state

    def _restore_embedding(self, state: tuple) -> None:
        p = self._predictor
        p.features, p.original_size, p.input_size = state
        p.is_image_set = True

    def _boxes_to_model(self, boxes: torch.Tensor) -> torch.Tensor:
        return self._predictor.transform.apply_boxes_torch(boxes, self._predictor.original_size)

    def _points_to_model(self, points: torch.Tensor) -> torch.Tensor:
        return self._predictor.transform.apply_coords_torch(points, self._predictor.original_size)

    def _predict_chunk(self, coords: torch.Tensor | None, labels: torch.Tensor | None, boxes: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        masks, scores, _ = self._predictor.predict_torch(point_coords=coords, point_labels=labels, boxes=boxes,
                                                         multimask_output=self.multimask)
        return masks, scores
