import numpy as np
import pytest

from samqa_framework.annotate.samqa.cleanup import CleanupParams, _clean_crop, clean_mask


def _whole_frame(mask: np.ndarray, params: CleanupParams) -> np.ndarray:
    """The same steps run on the whole frame (what clean_mask's cropping must reproduce)."""
    return _clean_crop(mask.copy(), params)


def _blobby(rng: np.random.Generator, shape: tuple[int, int], where: tuple[int, int]) -> np.ndarray:
    """An animal-like blob with a hole, a thin spur and a speckle fragment, centred at ``where``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = where
    a, b = rng.uniform(8, 20), rng.uniform(4, 10)
    mask = ((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 <= 1
    mask &= ~(((yy - cy) ** 2 + (xx - cx) ** 2) <= 4)                  # a hole
    mask[cy, cx: cx + 25] = True                                        # a spur one pixel thick
    mask |= rng.random(shape) < 0.002                                   # speckle
    return mask


@pytest.mark.parametrize("params", [CleanupParams(), CleanupParams(opening_radius=0),
                                    CleanupParams(opening_radius=3, largest_component=False),
                                    CleanupParams(fill_holes=False)])
def test_cleaning_the_masks_box_equals_cleaning_the_whole_frame(params: CleanupParams) -> None:
    rng = np.random.default_rng(0)
    shape = (120, 160)
    # centres inside, near an edge and at a corner: the box is clipped to the frame there
    for where in [(60, 80), (3, 80), (60, 2), (118, 158), (0, 0)]:
        mask = _blobby(rng, shape, where)
        got = clean_mask(mask, params)
        assert got.shape == mask.shape and got.dtype == bool
        assert np.array_equal(got, _whole_frame(mask, params)), (params, where)
    assert not clean_mask(np.zeros(shape, bool), params).any()


def test_cleanup_removes_spurs_fragments_and_holes() -> None:
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    mask[29:31, 29:31] = False          # a hole
    mask[30, 40:60] = True              # a spur
    mask[5:8, 5:8] = True               # a fragment
    out = clean_mask(mask, CleanupParams())
    assert out[30, 30] and not out[30, 55] and not out[6, 6]
    assert out[25, 25] and out.sum() < mask.sum()
