"""Assemble a SAM from any image encoder: segment-anything's prompt encoder and mask decoder, sized to it."""

from __future__ import annotations

import os

from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from samqa_framework.models.sam.encoders import EMBED_DIM, PATCH, check_image_size
from samqa_framework.utils.errors import ConfigError


def build_sam(encoder: nn.Module, image_size: int | None = None, checkpoint: str | os.PathLike[str] | None = None,
              checkpoint_format: str = "auto") -> Sam:
    """A ``segment_anything.Sam`` around ``encoder`` (which has ``img_size``), with SAM's decoder.

    The prompt encoder's embedding grid follows the encoder's input size (``img_size / 16``), so a 256-pixel
    student and the 1024-pixel SAM share every prompt-encoder and mask-decoder weight shape. ``checkpoint``
    (optional) is loaded with ``checkpoints.load_checkpoint`` in ``checkpoint_format``.
    """
    size = check_image_size(encoder.img_size, "encoder.img_size")
    if image_size is not None and check_image_size(image_size, "image_size") != size:
        raise ConfigError("image_size", f"{image_size} differs from the encoder's img_size {size}")
    grid = size // PATCH
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(embed_dim=EMBED_DIM, image_embedding_size=(grid, grid),
                                     input_image_size=(size, size), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=EMBED_DIM, mlp_dim=2048,
                                                               num_heads=8),
                                 transformer_dim=EMBED_DIM, iou_head_depth=3, iou_head_hidden_dim=256),
    )
    if checkpoint is not None:
        from samqa_framework.models.sam.checkpoints import load_checkpoint

        load_checkpoint(sam, checkpoint, checkpoint_format)
    return sam
