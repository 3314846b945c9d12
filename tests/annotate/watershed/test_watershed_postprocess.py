"""The watershed post-processing on synthetic heatmaps whose true instances are known."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from samqa_framework.annotate.watershed.postprocess import (
    WatershedParams,
    expected_radius,
    find_seeds,
    recover_seeds,
    remove_small_regions,
    split_instances,
    zone_overlap,
)
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR

SHAPE = (96, 128)


def blobs(centres: list[tuple[float, float]], sigma: float | list[float] = 6.0, amp: float | list[float] = 4.0,
          shape: tuple[int, int] = SHAPE, sigma_xy: tuple[float, float] | None = None) -> np.ndarray:
    """A logit-like heatmap: a sum of Gaussian bumps minus 1 (each alone is positive within sigma*sqrt(2 ln amp))."""
    rows, cols = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    sigmas = sigma if isinstance(sigma, list) else [sigma] * len(centres)
    amps = amp if isinstance(amp, list) else [amp] * len(centres)
    heat = np.zeros(shape)
    for (r, c), s, a in zip(centres, sigmas, amps, strict=True):
        sr, sc = sigma_xy if sigma_xy else (s, s)
        heat += a * np.exp(-((rows - r) ** 2 / (2 * sr ** 2) + (cols - c) ** 2 / (2 * sc ** 2)))
    return (heat - 1.0).astype(np.float32)


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(0)


def assert_matches(masks: list[np.ndarray], centres: list[tuple[float, float]], tol: float) -> None:
    """One mask per centre, each mask's centroid within ``tol`` px of its own centre; masks disjoint."""
    assert len(masks) == len(centres)
    got = np.stack([centroid(m) for m in masks])
    want = np.asarray(centres, dtype=np.float64)
    dist = np.linalg.norm(got[:, None] - want[None], axis=2)
    assert sorted(dist.argmin(1).tolist()) == list(range(len(centres))), dist  # a one-to-one match
    assert dist.min(1).max() <= tol, dist
    assert np.stack(masks).sum(0).max() <= 1  # no pixel in two instances


@pytest.mark.parametrize("refine", ["gmm", "kmeans", "none"])
@pytest.mark.parametrize("centres", [
    [(30, 30), (60, 95)],
    [(25, 25), (25, 100), (70, 30)],
    [(22, 22), (22, 104), (74, 22), (74, 104)],
], ids=["2", "3", "4"])
def test_separate_blobs_give_one_instance_each(centres, refine: str) -> None:
    masks = split_instances(blobs(centres), len(centres), WatershedParams(refine=refine))
    assert_matches(masks, centres, tol=1.5)
    radius = 6.0 * np.sqrt(2 * np.log(4.0))  # where a lone bump crosses 0
    for m in masks:
        assert abs(m.sum() - np.pi * radius ** 2) < 0.15 * np.pi * radius ** 2


@pytest.mark.parametrize("refine", ["gmm", "kmeans", "none"])
def test_two_touching_blobs_are_split_along_the_saddle(refine: str) -> None:
    centres = [(48, 56), (48, 72)]  # 16 px apart, each ~10 px in radius: one connected foreground region
    heat = blobs(centres)
    from skimage.measure import label
    assert label(heat > 0).max() == 1
    masks = split_instances(heat, 2, WatershedParams(refine=refine))
    assert_matches(masks, centres, tol=2.5)
    left = masks[0] if centroid(masks[0])[1] < 64 else masks[1]
    assert np.argwhere(left)[:, 1].max() <= 65  # the cut is at the saddle (column 64), give or take a pixel


@pytest.mark.parametrize("refine", ["gmm", "kmeans"])
def test_two_elongated_animals_side_by_side(refine: str) -> None:
    """Rat-like bumps (3:1) lying side by side and touching: their short axes face each other."""
    centres = [(40, 64), (56, 64)]
    heat = blobs(centres, sigma_xy=(5.0, 15.0))
    masks = split_instances(heat, 2, WatershedParams(refine=refine))
    assert_matches(masks, centres, tol=2.5)


def test_instances_are_sorted_by_area_and_capped_at_n() -> None:
    centres = [(30, 30), (60, 95), (70, 30)]
    heat = blobs(centres, sigma=[4.0, 8.0, 6.0])
    masks = split_instances(heat, 3)
    areas = [int(m.sum()) for m in masks]
    assert areas == sorted(areas, reverse=True)
    assert np.linalg.norm(centroid(masks[0]) - [60, 95]) < 1.5  # the widest bump is first
    one = split_instances(heat, 1)
    assert len(one) == 1


def test_one_animal_keeps_the_strongest_region() -> None:
    heat = blobs([(30, 30), (60, 95)], amp=[3.0, 6.0])
    masks = split_instances(heat, 1)
    assert len(masks) == 1 and np.linalg.norm(centroid(masks[0]) - [60, 95]) < 1.5
    solo = split_instances(blobs([(40, 50)]), 1, WatershedParams(refine="gmm"))
    assert_matches(solo, [(40, 50)], tol=1.0)


@pytest.mark.parametrize("heat", [np.full(SHAPE, -3.0, np.float32), np.zeros(SHAPE, np.float32)],
                         ids=["negative", "zero"])
def test_no_foreground_gives_no_instance(heat: np.ndarray) -> None:
    assert split_instances(heat, 2) == []


def test_hidden_animal_is_not_invented_and_specks_are_dropped() -> None:
    """3 animals expected, 2 visible, plus a strong 5x5 speck: the speck is an outlier, no third mask."""
    centres = [(30, 30), (60, 95)]
    heat = blobs(centres)
    heat[80:85, 10:15] = 5.0  # stronger than any animal: without cleaning it would be the first seed
    masks = split_instances(heat, 3)
    assert_matches(masks, centres, tol=1.5)
    kept_speck = split_instances(heat, 3, WatershedParams(opening_radius=0, min_area_ratio=0.0))
    assert len(kept_speck) == 3  # the cleaning steps are what removed it


def test_missed_seed_is_recovered_from_the_distance_transform() -> None:
    rows, cols = np.mgrid[:SHAPE[0], :SHAPE[1]]
    fg = ((rows - 48) ** 2 + (cols - 50) ** 2 < 100) | ((rows - 48) ** 2 + (cols - 68) ** 2 < 100)
    r = expected_radius(fg.sum(), 2)
    out = recover_seeds(fg, np.array([[48, 50]]), 2, 0.75 * r, 0.4 * r)
    assert len(out) == 2 and tuple(out[0]) == (48, 50)
    assert abs(out[1][0] - 48) <= 2 and out[1][1] > 62  # in the other disk, away from the first zone
    # in the pipeline: touching bumps whose zones may not overlap at all lose the weaker peak; recovery restores it
    centres = [(48, 56), (48, 72)]
    heat = blobs(centres, amp=[4.0, 3.8])
    strict = {"exclusion_scale": 1.0, "max_zone_overlap": 0.0}
    assert len(split_instances(heat, 2, WatershedParams(**strict, recover_seeds=False))) == 1
    assert_matches(split_instances(heat, 2, WatershedParams(**strict)), centres, tol=3.0)

def test_exclusion_zone_and_overlap_rule() -> None:
    assert zone_overlap(0.0, 5.0) == pytest.approx(1.0)
    assert zone_overlap(5.0, 5.0) == pytest.approx(0.391, abs=1e-3)
    assert zone_overlap(10.0, 5.0) == pytest.approx(0.0)
    heat = blobs([(48, 50), (48, 62)], sigma=3.0)  # two peaks 12 px apart
    fg = heat > 0
    assert zone_overlap(12.0, 10.0) == pytest.approx(0.285, abs=1e-3)
    assert len(find_seeds(heat, fg, 2, zone_radius=10.0, max_zone_overlap=0.3)) == 2
    assert len(find_seeds(heat, fg, 2, zone_radius=10.0, max_zone_overlap=0.25)) == 1  # too much: weaker dropped
    assert len(find_seeds(heat, fg, 2, zone_radius=13.0, max_zone_overlap=1.0)) == 1  # inside the zone


def test_small_regions_relative_to_the_largest_are_removed() -> None:
    fg = np.zeros((20, 20), bool)
    fg[:10, :10] = True  # 100 px
    fg[15:18, 15:18] = True  # 9 px
    assert remove_small_regions(fg, 0.1).sum() == 100
    assert remove_small_regions(fg, 0.05).sum() == 109


def test_params_are_validated_and_the_yaml_matches_the_defaults() -> None:
    with pytest.raises(ConfigError, match=r"'refine'"):
        WatershedParams(refine="spectral")
    with pytest.raises(ConfigError, match=r"'min_area_ratio'"):
        WatershedParams(min_area_ratio=2.0)
    with pytest.raises(ConfigError, match=r"'thresh': unknown key"):
        WatershedParams.from_mapping({"thresh": 0.5})
    cfg = OmegaConf.load(CONFIG_DIR / "postprocess" / "watershed.yaml")
    assert instantiate(cfg) == WatershedParams() == WatershedParams.from_mapping(cfg)
    with pytest.raises(ValueError, match="n_animals"):
        split_instances(blobs([(30, 30)]), 0)
    with pytest.raises(ValueError, match="NaN"):
        split_instances(np.full(SHAPE, np.nan, np.float32), 1)
