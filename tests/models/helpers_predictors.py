"""What the light SAM's and SAM 2's predictor tests share: random frames, and a predictor whose image-encoder passes
are counted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

H, W = 48, 80  # not square, not the model size: exercises resizing (and SAM's padding) both ways


def random_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def counted_predictor(make: Callable[[Any], Any], model: Any) -> Iterator[tuple[Any, list[torch.Tensor]]]:
    """``make(model)`` plus the list of inputs its image encoder saw (one entry per encoder pass)."""
    seen: list[torch.Tensor] = []
    handle = model.image_encoder.register_forward_hook(lambda _m, args, _out: seen.append(args[0].clone()))
    yield make(model), seen
    handle.remove()
