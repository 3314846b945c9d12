"""The static part of the scene: bedding floor, cage walls, and the red tunnel drawn over the animals.

Geometry shared with the motion model is in "scene units": image-width units, origin at the top-left,
y pointing down (so the floor spans y in [0, height / width]). One scene unit is ``width`` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from samqa_framework.data.synthetic.scene import ArenaSpec, TunnelSpec

__all__ = ["Floor", "TunnelFrame", "TunnelOverlay", "floor_bounds", "render_background", "render_tunnel",
           "tunnel_frame"]

_SHIFT = 4                  # sub-pixel bits for cv2 drawing (coordinates are multiplied by 16)
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Floor:
    """The open floor inside the walls, in scene units."""

    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class TunnelFrame:
    """The tunnel's rectangle in scene units: centre, unit axis, half sizes."""

    cx: float
    cy: float
    angle: float            # radians
    half_length: float
    half_width: float

    def local(self, x: float, y: float) -> tuple[float, float]:
        """(along, across) coordinates of a scene point relative to the tunnel's centre."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return dx * c + dy * s, -dx * s + dy * c

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        u, v = self.local(x, y)
        return abs(u) <= self.half_length + margin and abs(v) <= self.half_width + margin

    def sample_point(self, rng: np.random.Generator) -> tuple[float, float]:
        """A destination inside the tube, away from its ends (animals walk in and stay a while)."""
        u = rng.uniform(-0.7, 0.7) * self.half_length
        v = rng.uniform(-0.2, 0.2) * self.half_width
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + u * c - v * s, self.cy + u * s + v * c


def floor_bounds(spec: ArenaSpec, width: int, height: int) -> Floor:
    wall = spec.wall_width
    return Floor(wall, wall, 1.0 - wall, height / width - wall)


def tunnel_frame(spec: TunnelSpec, width: int, height: int) -> TunnelFrame | None:
    if not spec.enabled:
        return None
    return TunnelFrame(cx=spec.center[0], cy=spec.center[1] * height / width, angle=math.radians(spec.angle),
                       half_length=spec.length / 2, half_width=spec.width / 2)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell_px: float) -> np.ndarray:
    """Unit-std noise with blobs about ``cell_px`` pixels wide (upsampled coarse grid)."""
    gw, gh = max(2, round(width / max(cell_px, 1.0))) + 2, max(2, round(height / max(cell_px, 1.0))) + 2
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    std = float(up.std())
    return up / std if std > 0 else up


def render_background(spec: ArenaSpec, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """The empty cage, (height, width, 3) uint8 BGR; deterministic given ``rng``."""
    w, h = width, height
    base = np.asarray(spec.floor_color, np.float32)
    # Bedding: blotches at a few scales (uneven heaps of litter) ...
    blot = np.zeros((h, w), np.float32)
    chip_px = spec.chip_size * w
    for cells, weight in ((12.0, 0.6), (4.0, 0.5), (1.5, 0.35)):
        blot += weight * _smooth_noise(rng, w, h, cells * chip_px)
    img = base[None, None, :] + (spec.floor_texture * blot)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    # ... then individual elongated chips, lighter and darker than the litter around them.
    chip_len, chip_wid = chip_px, chip_px * 0.38
    area = w * h * (1 - 2 * spec.wall_width) ** 2
    count = int(spec.chip_density * area / max(chip_len * chip_wid, 1.0))
    count = min(count, int(area / 3))          # at tiny sizes chips are sub-pixel: cap the work
    if count > 0:
        xs = rng.uniform(0, w, count)
        ys = rng.uniform(0, h, count)
        lens = chip_len * rng.uniform(0.5, 1.4, count) / 2
        wids = chip_wid * rng.uniform(0.6, 1.3, count) / 2
        angles = rng.uniform(0, 180, count)
        gains = 1 + spec.chip_contrast * np.clip(rng.standard_normal(count), -2.5, 2.5)
        tints = rng.normal(0, 0.03, (count, 3))
        for i in range(count):
            color = tuple(float(c) for c in np.clip(base * (gains[i] + tints[i]), 0, 255))
            cv2.ellipse(img, (int(xs[i] * _ONE), int(ys[i] * _ONE)),
                        (max(1, int(lens[i] * _ONE)), max(1, int(wids[i] * _ONE))), float(angles[i]), 0, 360,
                        color, -1, cv2.LINE_AA, _SHIFT)
    out = img.astype(np.float32)
    # Walls and light: distance of each pixel to the image border, in width units.
    xs_u = (np.arange(w, dtype=np.float32) + 0.5) / w
    ys_u = (np.arange(h, dtype=np.float32) + 0.5) / w
    hu = h / w
    dx = np.minimum(xs_u, 1 - xs_u)[None, :]
    dy = np.minimum(ys_u, hu - ys_u)[:, None]
    d = np.minimum(dx, dy)
    r2 = ((xs_u[None, :] - 0.5) ** 2 + (ys_u[:, None] - hu / 2) ** 2) / (0.25 + hu * hu / 4)
    light = 1 + spec.floor_gradient * (0.4 - r2)
    ww = spec.wall_width
    shadow = 1 - spec.wall_shadow * np.exp(-np.maximum(d - ww, 0) / spec.wall_shadow_width)
    out *= (light * shadow)[..., None]
    if ww > 0:
        t = np.clip(d / ww, 0, 1)                                    # 0 at the rim, 1 at the wall's foot
        wall = np.asarray(spec.wall_color, np.float32)[None, None, :] * (
            1 + spec.wall_shading * (0.5 - t))[..., None]
        wall += 2.0 * _smooth_noise(rng, w, h, 0.006 * w)[..., None]  # scuffs on the plastic
        # soft edge between wall and floor (about one pixel, at any resolution)
        in_wall = np.clip((ww - d) * w + 0.5, 0, 1)[..., None]
        foot = np.exp(-(((d - ww) * w) / max(1.0, 0.003 * w)) ** 2)[..., None]   # dark seam at the foot
        out = out * (1 - in_wall) + wall * in_wall
        out *= 1 - 0.35 * foot
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass
class TunnelOverlay:
    """The tunnel over a region of interest: its premultiplied colour and alpha, applied after the animals."""

    x0: int
    y0: int
    alpha: np.ndarray       # (h, w) float32 in [0, 1]
    premult: np.ndarray     # (h, w, 3) float32, colour * alpha
    hidden: np.ndarray      # (h, w) bool: pixels where an animal counts as hidden (alpha >= 0.5)

    def apply(self, image: np.ndarray) -> None:
        """Blend the tunnel over ``image`` in place."""
        h, w = self.alpha.shape
        roi = image[self.y0:self.y0 + h, self.x0:self.x0 + w]
        out = roi.astype(np.float32) * (1 - self.alpha)[..., None] + self.premult
        roi[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def hidden_full(self, height: int, width: int) -> np.ndarray:
        """``hidden`` as a full-frame boolean map."""
        full = np.zeros((height, width), bool)
        h, w = self.hidden.shape
        full[self.y0:self.y0 + h, self.x0:self.x0 + w] = self.hidden
        return full


def render_tunnel(spec: TunnelSpec, width: int, height: int) -> TunnelOverlay | None:
    """The tunnel's overlay, or None when it is disabled or off the image."""
    frame = tunnel_frame(spec, width, height)
    if frame is None:
        return None
    s = width                                                   # pixels per scene unit
    cx, cy, hl, hw = frame.cx * s, frame.cy * s, frame.half_length * s, frame.half_width * s
    c, si = math.cos(frame.angle), math.sin(frame.angle)
    ex, ey = abs(hl * c) + abs(hw * si) + 2, abs(hl * si) + abs(hw * c) + 2
    x0, x1 = max(0, int(cx - ex)), min(width, math.ceil(cx + ex) + 1)
    y0, y1 = max(0, int(cy - ey)), min(height, math.ceil(cy + ey) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    u = xs * c + ys * si                                        # along the axis (px)
    v = -xs * si + ys * c                                       # across (px)
    cover = np.clip(hl - np.abs(u) + 0.5, 0, 1) * np.clip(hw - np.abs(v) + 0.5, 0, 1)   # anti-aliased box
    rim_px = max(spec.rim_width * s, 1.0)
    side = np.clip((np.abs(v) - (hw - rim_px)) / rim_px, 0, 1)            # 1 on the long edges
    end = np.clip((np.abs(u) - (hl - 0.5 * rim_px)) / (0.5 * rim_px), 0, 1)  # thin cut edges at the ends
    edge = np.maximum(side, end)
    alpha = (spec.opacity + (spec.rim_opacity - spec.opacity) * edge) * cover
    # Colour: darker where the view passes through more plastic, a bright stripe where light reflects.
    base = np.asarray(spec.color, np.float32)[None, None, :]
    vn = v / max(hw, 1e-6)
    stripe = spec.highlight * np.exp(-((vn + 0.38) / 0.13) ** 2)[..., None]
    color = base * (1 - 0.3 * edge)[..., None]
    color = color + (255 - color) * stripe
    alpha_out = alpha.astype(np.float32)
    return TunnelOverlay(x0=x0, y0=y0, alpha=alpha_out, premult=(color * alpha_out[..., None]).astype(np.float32),
                         hidden=alpha_out >= 0.5)
