from __future__ import annotations

import numpy as np
import pytest

from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.images import as_hw, resize_mask, resize_rgb


def test_as_hw_takes_a_side_or_a_pair_and_names_the_key() -> None:
    assert as_hw(64, "k") == (64, 64) and as_hw([48, 64], "k") == (48, 64)
    for bad in ([1, 2, 3], [0, 5], "x"):
        with pytest.raises(ConfigError, match=r"x\.image_size"):
            as_hw(bad, "x.image_size")


def test_resizing_keeps_dtypes_and_a_half_covered_pixel_is_foreground() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3] = 200
    small = resize_rgb(rgb, (2, 3))
    assert small.shape == (2, 3, 3) and small.dtype == np.uint8 and small[0, 0, 0] == 200 and small[0, 2, 0] == 0
    mask = np.zeros((4, 4), bool)
    mask[:, :2] = True  # the left output column is all foreground
    mask[0, 2] = True   # a quarter of the top-right block: background
    out = resize_mask(mask, (2, 2))
    assert out.dtype == bool and out.tolist() == [[True, False], [True, False]]
    assert np.array_equal(resize_rgb(rgb, (4, 6)), rgb)
