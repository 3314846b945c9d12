"""Split a foreground heatmap into at most N animal masks, knowing N (the paper's watershed post-processing).

The heatmap is a segmentation net's foreground-minus-background logit at the frame's resolution
(``SegmentationPredictor.heatmap``). :func:`split_instances` composes the steps below; each is a small pure
function and every parameter is a field of :class:`WatershedParams` (= the keys of
``conf/postprocess/watershed.yaml``):

1. foreground: ``heatmap > threshold``;
2. morphological closing then opening (disks of ``closing_radius`` / ``opening_radius`` px; 0 skips);
3. outlier regions: connected components smaller than ``min_area_ratio`` x the largest are dropped;
4. seeds: local maxima of the (``peak_sigma``-smoothed) heatmap, strongest first, each opening a circular
   exclusion zone of radius ``exclusion_scale`` x the expected animal radius ``sqrt(area / (N pi))``; a peak
   inside a zone belongs to the same animal and is skipped, and a weaker peak whose zone overlaps a stronger
   one's by more than ``max_zone_overlap`` (fraction of a zone's area) is dropped, until N seeds;
5. missed seeds (``recover_seeds``): while fewer than N, the foreground point farthest from the background and
   from every existing zone (distance-transform peak) becomes a seed, unless it is closer than
   ``recover_min_radius`` x the animal radius to them (a sliver, not an animal: some animals may be hidden);
6. watershed of the inverted heatmap from the seeds, inside the foreground (skimage);
7. refinement (``refine``): the foreground pixels' coordinates are clustered into as many clusters as segments,
   by a Gaussian mixture (``gmm``) or k-means (``kmeans``) initialised from the watershed segments; ``none``
   keeps the watershed segments.

The cleaning (2, 3) runs before the seeds are taken (the paper lists it after the peaks): the expected radius
then comes from the cleaned area and no seed lands in a region that is removed afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation
from skimage.feature import peak_local_max
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from samqa_framework.utils.errors import ConfigError

REFINE = ("gmm", "kmeans", "none")
_COV_REG = 1.0  # px^2 added to each segment's covariance: a thin or tiny segment still gives a valid Gaussian


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`split_instances` (see the module's docstring for what each step does)."""

    threshold: float = 0.0  # foreground: heatmap > threshold (logit difference 0 = probability 0.5)
    closing_radius: int = 2  # px; 0 skips the closing
    opening_radius: int = 2  # px; 0 skips the opening
    min_area_ratio: float = 0.1  # drop regions smaller than this x the largest region
    peak_sigma: float = 1.0  # px; Gaussian smoothing of the heatmap before its peaks are taken (0: none)
    exclusion_scale: float = 0.75  # exclusion-zone radius, x the expected animal radius
    max_zone_overlap: float = 0.3  # drop the weaker peak when two zones overlap more (fraction of a zone's area)
    recover_seeds: bool = True  # add seeds up to the known count from the distance transform
    recover_min_radius: float = 0.4  # ... only where it reaches this x the expected animal radius
    refine: str = "gmm"  # gmm | kmeans | none
    max_fit_pixels: int = 20000  # clustering fits on at most this many (random) foreground pixels
    random_state: int = 0  # seeds the pixel subsample and the clustering

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(name, f"{rule}, got {getattr(self, name)!r}")

        if not math.isfinite(float(self.threshold)):
            raise bad("threshold", "must be a finite number")
        for name in ("closing_radius", "opening_radius"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise bad(name, "must be a whole number of pixels >= 0")
        for name in ("min_area_ratio", "max_zone_overlap"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise bad(name, "must be in [0, 1]")
        for name in ("peak_sigma", "recover_min_radius"):
            if not float(getattr(self, name)) >= 0.0:
                raise bad(name, "must be >= 0")
        if not float(self.exclusion_scale) > 0.0:
            raise bad("exclusion_scale", "must be > 0")
        if self.refine not in REFINE:
            raise bad("refine", f"must be one of {', '.join(REFINE)}")
        if int(self.max_fit_pixels) < 1:
            raise bad("max_fit_pixels", "must be >= 1")

    @classmethod
    def from_mapping(cls, cfg: dict[str, Any] | None) -> WatershedParams:
        """From a config mapping (``_target_`` ignored); an unknown key is a ``ConfigError`` naming it."""
        values = {k: v for k, v in dict(cfg or {}).items() if k != "_target_"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(known))})")
        return cls(**values)


# ------------------------------------------------------------------------------------------------ steps


def foreground(heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) bool: ``heatmap > threshold``."""
    return np.asarray(heatmap) > threshold


def clean_foreground(fg: np.ndarray, closing_radius: int, opening_radius: int) -> np.ndarray:
    """Closing (fills holes and gaps narrower than the disk) then opening (removes specks and thin spurs)."""
    out = fg.astype(bool)
    if closing_radius > 0:
        out = morphology.closing(out, morphology.disk(int(closing_radius)))
    if opening_radius > 0:
        out = morphology.opening(out, morphology.disk(int(opening_radius)))
    return out.astype(bool)


def remove_small_regions(fg: np.ndarray, min_area_ratio: float) -> np.ndarray:
    """Drop the 8-connected regions whose area is below ``min_area_ratio`` x the largest region's."""
    labels = measure.label(fg, connectivity=2)
    if labels.max() == 0:
        return fg.astype(bool)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    keep = areas >= min_area_ratio * areas.max()
    keep[0] = False
    return keep[labels]


def expected_radius(area: float, n_animals: int) -> float:
    """Radius of a disk with an animal's share of the foreground: ``sqrt(area / (n pi))``."""
    return math.sqrt(max(float(area), 0.0) / (max(int(n_animals), 1) * math.pi))


def zone_overlap(distance: np.ndarray | float, radius: float) -> np.ndarray:
    """Fraction of a disk of ``radius`` covered by another of the same radius whose centre is ``distance`` away
    (1 at distance 0, 0.39 at one radius, 0 from two radii)."""
    x = np.clip(np.asarray(distance, dtype=np.float64) / (2.0 * radius), 0.0, 1.0)
    return (2.0 / np.pi) * (np.arccos(x) - x * np.sqrt(1.0 - x * x))


def find_seeds(heatmap: np.ndarray, fg: np.ndarray, n_animals: int, zone_radius: float, max_zone_overlap: float,
               peak_sigma: float = 0.0) -> np.ndarray:
    """Up to ``n_animals`` (row, col) peaks of the heatmap inside ``fg``, strongest first (see step 4)."""
    smooth = ndi.gaussian_filter(heatmap.astype(np.float64), peak_sigma) if peak_sigma > 0 else heatmap
    candidates = peak_local_max(smooth, min_distance=1, exclude_border=False, labels=fg.astype(np.uint8))
    if len(candidates) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(-smooth[candidates[:, 0], candidates[:, 1]], kind="stable")
    seeds: list[np.ndarray] = []
    for cand in candidates[order]:
        if seeds:
            dist = np.hypot(*(np.asarray(seeds) - cand).T)
            if (dist < zone_radius).any():  # inside a stronger peak's zone: the same animal
                continue
            if (zone_overlap(dist, zone_radius) > max_zone_overlap).any():  # zones overlap too much: drop the weaker
                continue
        seeds.append(cand)
        if len(seeds) == n_animals:
            break
    return np.asarray(seeds, dtype=np.int64).reshape(-1, 2)


def _disk_mask(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 < radius ** 2


def recover_seeds(fg: np.ndarray, seeds: np.ndarray, n_animals: int, zone_radius: float,
                  min_radius: float) -> np.ndarray:
    """Add seeds up to ``n_animals`` at distance-transform peaks of the foreground outside every zone (step 5)."""
    out = [np.asarray(s, dtype=np.int64) for s in seeds]
    free = fg.astype(bool).copy()
    for s in out:
        free &= ~_disk_mask(fg.shape, s, zone_radius)
    while len(out) < n_animals and free.any():
        # the image border counts as background: an animal cut by it is no bigger than what is visible
        dist = ndi.distance_transform_edt(np.pad(free, 1))[1:-1, 1:-1]
        best = np.asarray(np.unravel_index(int(np.argmax(dist)), dist.shape), dtype=np.int64)
        if dist[tuple(best)] < max(min_radius, 1.0):
            break
        out.append(best)
        free &= ~_disk_mask(fg.shape, best, zone_radius)
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def watershed_segments(heatmap: np.ndarray, seeds: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """(H, W) int32 labels 1..k (0: background): watershed of ``-heatmap`` from the k seeds, inside ``fg``."""
    markers = np.zeros(fg.shape, dtype=np.int32)
    markers[seeds[:, 0], seeds[:, 1]] = np.arange(1, len(seeds) + 1)
    return segmentation.watershed(-heatmap.astype(np.float64), markers, mask=fg).astype(np.int32)


def refine_segments(labels: np.ndarray, method: str, max_fit_pixels: int = 20000,
                    random_state: int = 0) -> np.ndarray:
    """Re-assign the labelled pixels by clustering their coordinates, initialised from the segments (step 7)."""
    if method not in REFINE:
        raise ConfigError("method", f"must be one of {', '.join(REFINE)}, got {method!r}")
    ids = np.unique(labels[labels > 0])
    if method == "none" or len(ids) < 2:
        return labels
    rows, cols = np.nonzero(labels)
    coords = np.column_stack([rows, cols]).astype(np.float64)
    lab = labels[rows, cols]
    members = [coords[lab == i] for i in ids]
    means = np.stack([m.mean(0) for m in members])
    rng = np.random.default_rng(random_state)
    fit = coords if len(coords) <= max_fit_pixels else coords[rng.choice(len(coords), max_fit_pixels, replace=False)]
    k = len(ids)
    if method == "kmeans":
        model = KMeans(n_clusters=k, init=means, n_init=1, random_state=random_state).fit(fit)
    else:
        covs = [np.cov(m.T) if len(m) > 1 else np.zeros((2, 2)) for m in members]
        precisions = np.stack([np.linalg.inv(c + _COV_REG * np.eye(2)) for c in covs])
        weights = np.array([len(m) for m in members], dtype=np.float64)
        model = GaussianMixture(n_components=k, covariance_type="full", means_init=means, precisions_init=precisions,
                                weights_init=weights / weights.sum(), reg_covar=_COV_REG,
                                random_state=random_state).fit(fit)
    out = np.zeros_like(labels)
    out[rows, cols] = model.predict(coords).astype(labels.dtype) + 1
    return out


def masks_from_labels(labels: np.ndarray, n_animals: int) -> list[np.ndarray]:
    """The non-empty labels as (H, W) bool masks, largest first, at most ``n_animals``."""
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    order = np.argsort(-areas, kind="stable")[:n_animals]
    return [labels == ids[i] for i in order]


# ---------------------------------------------------------------------------------------------- pipeline


def split_instances(heatmap: np.ndarray, n_animals: int, params: WatershedParams | None = None) -> list[np.ndarray]:
    """At most ``n_animals`` (H, W) bool instance masks from a (H, W) foreground heatmap, largest first.

    An empty foreground gives ``[]``; fewer masks than ``n_animals`` come back when no more animal-sized region
    can be found (an animal may be hidden).
    """
    p = params or WatershedParams()
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2 or min(heat.shape) < 1:
        raise ValueError(f"heatmap must be a non-empty (H, W) array, got shape {heat.shape}")
    if not np.isfinite(heat).all():
        raise ValueError("heatmap has NaN or infinite values")
    if int(n_animals) != n_animals or n_animals < 1:
        raise ValueError(f"n_animals must be a whole number >= 1, got {n_animals}")
    n = int(n_animals)
    fg = clean_foreground(foreground(heat, p.threshold), p.closing_radius, p.opening_radius)
    fg = remove_small_regions(fg, p.min_area_ratio)
    if not fg.any():
        return []
    radius = expected_radius(fg.sum(), n)
    zone = max(p.exclusion_scale * radius, 1.0)
    seeds = find_seeds(heat, fg, n, zone, p.max_zone_overlap, p.peak_sigma)
    if p.recover_seeds and len(seeds) < n:
        seeds = recover_seeds(fg, seeds, n, zone, p.recover_min_radius * radius)
    if len(seeds) == 0:
        return []
    labels = watershed_segments(heat, seeds, fg)
    labels = refine_segments(labels, p.refine, p.max_fit_pixels, p.random_state)
    return masks_from_labels(labels, n)
