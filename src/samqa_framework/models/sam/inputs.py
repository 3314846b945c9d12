"""SAM's input on the model side: the data modules give ``uint8`` images resized as ``SamPredictor`` does and
zero-padded at the bottom/right to a square (``data.datamodules``); the modules normalise them here, as
``Sam.preprocess`` does, and rebuild flip variants of a padded batch image (distillation's teacher cache).
"""

from __future__ import annotations

import torch


def flip_content(images: torch.Tensor, input_size: torch.Tensor, variant: tuple[bool, bool]) -> torch.Tensor:
    """Flip the valid (unpadded) ``input_size`` region of each (…, C, S, S) image; the padding stays put.

    ``images`` (B, C, S, S), ``input_size`` (B, 2) as (h, w). Flipping twice gives the input back, so this both
    applies and undoes a flip variant.
    """
    hflip, vflip = variant
    if not (hflip or vflip):
        return images
    out = images.clone()
    for b in range(images.shape[0]):
        h, w = (int(v) for v in input_size[b])
        dims = [d for d, on in ((-1, hflip), (-2, vflip)) if on]
        out[b, :, :h, :w] = images[b, :, :h, :w].flip(dims)
    return out


def normalize_images(images: torch.Tensor, input_size: torch.Tensor, pixel_mean: torch.Tensor,
                     pixel_std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) padded images -> SAM's normalised input, zero in the padding (= ``Sam.preprocess``)."""
    x = (images.float() - pixel_mean.view(1, -1, 1, 1)) / pixel_std.view(1, -1, 1, 1)
    rows = torch.arange(x.shape[-2], device=x.device).view(1, -1, 1)
    cols = torch.arange(x.shape[-1], device=x.device).view(1, 1, -1)
    inside = (rows < input_size[:, 0].view(-1, 1, 1)) & (cols < input_size[:, 1].view(-1, 1, 1))
    return x * inside.unsqueeze(1).to(x.dtype)
