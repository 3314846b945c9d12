from __future__ import annotations

import numpy as np

from samqa_framework.annotate.base import Instance, instance_from_mask, instance_from_rle
from samqa_framework.data import rle


def _mask() -> np.ndarray:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:7] = True
    return mask


def test_an_encoded_mask_is_decoded_on_first_use_and_passed_through_until_then() -> None:
    encoded = rle.encode(_mask())
    inst = instance_from_rle(3, [3, 2, 7, 5], encoded, 0.5, "manual")
    assert inst.has_mask and inst.area == 12 and inst.encoded_mask() is encoded
    np.testing.assert_array_equal(inst.mask, _mask())
    assert inst.encoded_mask() is encoded  # still the RLE it came with, not a re-encoding
    assert (inst.track_id, inst.score, inst.source) == (3, 0.5, "manual")


def test_a_new_mask_replaces_the_encoded_one() -> None:
    inst = instance_from_rle(1, [3, 2, 7, 5], rle.encode(_mask()))
    inst.mask = None
    assert not inst.has_mask and inst.mask is None and inst.encoded_mask() is None
    inst.mask = ~_mask()
    assert inst.area == 120 - 12 and rle.area(inst.encoded_mask()) == 108


def test_box_only_and_in_memory_masks_answer_alike() -> None:
    box_only = instance_from_rle(2, [0, 0, 4, 5], None)
    assert type(box_only) is Instance and not box_only.has_mask and box_only.encoded_mask() is None
    assert box_only.area == 20
    held = instance_from_mask(1, _mask())
    assert held.has_mask and held.encoded_mask() == rle.encode(_mask())
