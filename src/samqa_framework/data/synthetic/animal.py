"""Drawing one rodent, seen from above, into a local crop (never a full-frame layer, so large frames stay fast).

The silhouette is one polygon around a bent spine: a round rump widening to the hips, narrowing to the
neck, then a head that tapers to a rounded point (the snout); ears sit at the back of the head, eyes on
its sides. The tail is a tapering polyline from the rump that follows the path the rump took (so it trails
behind turns), with an opacity that varies over time. The crop carries a premultiplied colour, a soft
alpha, a soft shadow, and the HARD body+head mask used as ground truth (drawn before any blur, tail
excluded unless asked). At speed, colour and alpha are smeared along the motion with a line kernel.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from samqa_framework.data.synthetic.scene import AnimalSpec

__all__ = ["AnimalLook", "AnimalSprite", "BodyGeometry", "TailTrail", "body_geometry", "draw_animal",
           "motion_blur_kernel", "paste_sprite", "sample_look"]

_SHIFT = 4
_ONE = float(1 << _SHIFT)
_SPINE_SAMPLES = 41         # odd, so the middle sample is the body centre


@dataclass(frozen=True)
class AnimalLook:
    """One animal's fixed appearance, in scene units (image widths) and BGR colours."""

    body_length: float
    body_width: float
    head_length: float          # fraction of body length
    head_width: float
    color: tuple[float, float, float]
    shading: float
    edge_softness: float
    ear_size: float             # 0: no ears
    ear_color: tuple[float, float, float]
    eyes: bool
    eye_color: tuple[float, float, float]
    tail_length: float
    tail_width: float
    tail_color: tuple[float, float, float]
    tail_wave: float
    shadow: float


def sample_look(spec: AnimalSpec, rng: np.random.Generator) -> AnimalLook:
    """Per-animal size and brightness drawn around the spec (cage mates are similar, not identical)."""
    scale = 1 + spec.size_jitter * float(np.clip(rng.standard_normal(), -2, 2))
    gain = 1 + spec.color_jitter * float(np.clip(rng.standard_normal(), -2, 2))
    tint = rng.normal(0, spec.color_jitter * 0.25, 3)
    b, g, r = (float(np.clip(c * (gain + t), 0, 255)) for c, t in zip(spec.color, tint, strict=True))
    bl = spec.body_length * scale
    return AnimalLook(
        body_length=bl, body_width=spec.body_width * bl, head_length=spec.head_length,
        head_width=spec.head_width * bl, color=(b, g, r), shading=spec.shading,
        edge_softness=spec.edge_softness * bl, ear_size=spec.ear_size * bl if spec.ears else 0.0,
        ear_color=spec.ear_color, eyes=spec.eyes, eye_color=spec.eye_color,
        tail_length=spec.tail_length * bl, tail_width=spec.tail_width * bl, tail_color=spec.tail_color,
        tail_wave=spec.tail_wave, shadow=spec.shadow)


@dataclass
class BodyGeometry:
    """The silhouette in pixels: spine samples (rump -> nose), their unit normals and half widths."""

    spine: np.ndarray           # (n, 2)
    normals: np.ndarray         # (n, 2)
    half_widths: np.ndarray     # (n,)
    s: np.ndarray               # (n,) arc parameter, 0 at the rump, 1 at the nose
    neck: float                 # s where the head starts

    @property
    def outline(self) -> np.ndarray:
        left = self.spine + self.normals * self.half_widths[:, None]
        right = self.spine - self.normals * self.half_widths[:, None]
        return np.concatenate([left, right[::-1]], axis=0)

    def at(self, s: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Spine point, normal and half width at arc parameter ``s``."""
        p = np.array([np.interp(s, self.s, self.spine[:, k]) for k in range(2)])
        nrm = np.array([np.interp(s, self.s, self.normals[:, k]) for k in range(2)])
        nrm /= max(float(np.hypot(*nrm)), 1e-9)
        return p, nrm, float(np.interp(s, self.s, self.half_widths))

    @property
    def rump(self) -> np.ndarray:
        return self.spine[0]

    @property
    def rump_direction(self) -> np.ndarray:
        """Unit vector pointing backwards out of the rump (where the tail leaves)."""
        d = self.spine[0] - self.spine[2]
        return d / max(float(np.hypot(*d)), 1e-9)


def _profile(s: np.ndarray, look: AnimalLook) -> np.ndarray:
    """Half width along the spine, in units of the half body width."""
    neck = 1.0 - look.head_length
    head_ratio = look.head_width / look.body_width
    neck_ratio = 0.85 * head_ratio
    w = np.empty_like(s)
    body = s <= neck
    u = s[body] / neck
    c = 0.42                                                    # hips: widest point of the trunk
    rear = u < c
    w_body = np.empty_like(u)
    w_body[rear] = np.sqrt(np.clip(1 - ((c - u[rear]) / c) ** 2, 0, 1))          # round rump
    front = ~rear
    w_body[front] = neck_ratio + (1 - neck_ratio) * np.sqrt(np.clip(1 - ((u[front] - c) / (1 - c)) ** 2, 0, 1))
    w[body] = w_body
    v = (s[~body] - neck) / look.head_length
    grow = np.clip(v / 0.28, 0, 1)
    widen = neck_ratio + (head_ratio - neck_ratio) * (3 * grow**2 - 2 * grow**3)   # skull behind the eyes
    x = np.clip((v - 0.28) / 0.72, 0, 1)
    taper = np.sqrt(np.clip(1 - x**2, 0, 1)) * (1 - 0.55 * x)                      # towards a blunt point
    w[~body] = np.where(v < 0.28, widen, head_ratio * taper)
    return w


def body_geometry(look: AnimalLook, x: float, y: float, heading: float, bend: float,
                  scale: float) -> BodyGeometry:
    """Silhouette of an animal centred at scene point (x, y); ``scale`` is pixels per scene unit."""
    t = np.linspace(0.0, 1.0, _SPINE_SAMPLES)
    s = (1 - np.cos(np.pi * t)) / 2                                  # denser at rump and snout
    neck = 1.0 - look.head_length
    # the spine curves with ``bend``; the head turns a little further than the trunk
    phi = heading + bend * (s - 0.5) + 0.6 * bend * np.clip((s - neck) / look.head_length, 0, 1)
    length = look.body_length * scale
    ds = np.diff(s)
    mid = (phi[1:] + phi[:-1]) / 2
    steps = np.stack([np.cos(mid), np.sin(mid)], axis=1) * (length * ds)[:, None]
    spine = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)], axis=0)
    spine += np.array([x * scale, y * scale]) - spine[_SPINE_SAMPLES // 2]
    normals = np.stack([-np.sin(phi), np.cos(phi)], axis=1)
    half = _profile(s, look) * (look.body_width * scale / 2)
    return BodyGeometry(spine=spine, normals=normals, half_widths=half, s=s, neck=neck)


class TailTrail:
    """Recent tail-base positions (scene units), so the tail can lie along the path the animal took.

    Bounded by arc length, so memory does not grow with the sequence.
    """

    def __init__(self, tail_length: float) -> None:
        self.tail_length = tail_length
        self._points: deque[tuple[float, float]] = deque()

    def push(self, x: float, y: float) -> None:
        if self._points:
            lx, ly = self._points[-1]
            jump = math.hypot(x - lx, y - ly)
            if jump < 1e-9:
                return
            if jump > self.tail_length:                   # teleported (a state set by hand): start afresh
                self._points.clear()
        self._points.append((x, y))
        # keep just enough history to cover the tail
        total, pts = 0.0, list(self._points)
        for k in range(len(pts) - 1, 0, -1):
            total += math.hypot(pts[k][0] - pts[k - 1][0], pts[k][1] - pts[k - 1][1])
            if total > 1.2 * self.tail_length:
                for _ in range(k - 1):
                    self._points.popleft()
                break

    def polyline(self, base: np.ndarray, back: np.ndarray, n: int, phase: float, wave: float) -> np.ndarray:
        """``n`` points from ``base`` along the trail (extended straight where it is too short), scene units.

        ``back`` is the unit direction out of the rump; the first part of the tail follows it, then the tail
        bends onto the trail. ``wave`` swings the tail sideways (fraction of its length) with ``phase``.
        """
        length = self.tail_length
        path = [np.asarray(base, float)] + [np.array(p, float) for p in reversed(self._points)]
        pts = [path[0]]
        for p in path[1:]:
            if np.hypot(*(p - pts[-1])) > 1e-9:
                pts.append(p)
        arr = np.array(pts)
        seg = np.hypot(*np.diff(arr, axis=0).T) if len(arr) > 1 else np.zeros(0)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        if arc[-1] < length:                                 # extend straight beyond the known path
            d = arr[-1] - arr[-2] if len(arr) > 1 else np.asarray(back, float)
            d = d / max(float(np.hypot(*d)), 1e-9)
            arr = np.vstack([arr, arr[-1] + d * (length - arc[-1] + 1e-6)])
            arc = np.append(arc, length + 1e-6)
        st = np.linspace(0.0, length, n)
        trail = np.stack([np.interp(st, arc, arr[:, 0]), np.interp(st, arc, arr[:, 1])], axis=1)
        straight = np.asarray(base, float)[None, :] + np.asarray(back, float)[None, :] * st[:, None]
        w = np.exp(-st / (0.3 * max(length, 1e-9)))[:, None]
        pts_out = w * straight + (1 - w) * trail
        # resample to even spacing again (blending shortens it) and add the sideways swing
        d = np.diff(pts_out, axis=0)
        arc2 = np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
        if arc2[-1] > 1e-9:
            q = np.linspace(0, arc2[-1], n)
            pts_out = np.stack([np.interp(q, arc2, pts_out[:, 0]), np.interp(q, arc2, pts_out[:, 1])], axis=1)
        tang = np.gradient(pts_out, axis=0)
        tn = np.hypot(tang[:, 0], tang[:, 1])[:, None]
        nrm = np.stack([-tang[:, 1], tang[:, 0]], axis=1) / np.maximum(tn, 1e-9)
        frac = st / max(length, 1e-9)
        pts_out = pts_out + nrm * (wave * length * frac * np.sin(2 * np.pi * 0.9 * frac + phase))[:, None]
        return pts_out


@dataclass
class AnimalSprite:
    """One drawn animal in a crop at (x0, y0) of the frame."""

    x0: int
    y0: int
    premult: np.ndarray         # (h, w, 3) float32: colour * alpha
    alpha: np.ndarray           # (h, w) float32 in [0, 1]
    shadow: np.ndarray | None   # (h, w) float32 darkening factor in [0, 1], or None
    mask: np.ndarray            # (h, w) bool: hard body+head (+tail) mask, unblurred
    area: int                   # number of mask pixels

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.mask.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h


def motion_blur_kernel(dx: float, dy: float) -> np.ndarray | None:
    """Normalised line kernel for a displacement of (dx, dy) pixels during the exposure; None if < 1 px."""
    length = math.hypot(dx, dy)
    if length < 1.0:
        return None
    size = math.ceil(length) // 2 * 2 + 3                          # odd, with a margin for anti-aliasing
    c = (size - 1) / 2
    img = np.zeros((size, size), np.uint8)
    p0 = (round((c - dx / 2) * _ONE), round((c - dy / 2) * _ONE))
    p1 = (round((c + dx / 2) * _ONE), round((c + dy / 2) * _ONE))
    cv2.line(img, p0, p1, 255, 1, cv2.LINE_AA, _SHIFT)
    kernel = img.astype(np.float32)
    total = float(kernel.sum())
    if total <= 0:
        return None
    return kernel / total


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas are done on a downscaled copy (the result is smooth anyway)."""
    if sigma < 0.3:
        return a
    if sigma <= 4.0:
        return cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    f = sigma / 3.0
    h, w = a.shape[:2]
    small = cv2.resize(a, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 3.0, borderType=cv2.BORDER_CONSTANT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _pts(points: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Pixel coordinates -> cv2 fixed-point int32 coordinates relative to the crop."""
    local = (points - np.array([x0, y0], float)) * _ONE
    return np.round(local).astype(np.int32)


def draw_animal(look: AnimalLook, geom: BodyGeometry, tail: np.ndarray | None, tail_alpha: float,
                blur: tuple[float, float] | None, frame_shape: tuple[int, int], scale: float,
                tail_in_mask: bool = False) -> AnimalSprite | None:
    """Draw an animal into its own crop of a (height, width) frame.

    ``tail`` is the tail polyline in pixels (or None), ``tail_alpha`` its opacity now, ``blur`` the
    displacement in pixels during the exposure (None: sharp). Returns None when the crop is off-frame.
    """
    fh, fw = frame_shape
    outline = geom.outline
    pts_all = [outline]
    if tail is not None and len(tail) > 1:
        pts_all.append(tail)
    allp = np.concatenate(pts_all, axis=0)
    blur_px = math.hypot(*blur) if blur is not None else 0.0
    half_w = look.body_width * scale / 2
    shadow_off = np.array([0.05, 0.07]) * look.body_length * scale
    pad = math.ceil(blur_px / 2 + 0.6 * half_w + abs(shadow_off).max() + look.ear_size * scale + 3)
    x0 = max(0, math.floor(allp[:, 0].min()) - pad)
    y0 = max(0, math.floor(allp[:, 1].min()) - pad)
    x1 = min(fw, math.ceil(allp[:, 0].max()) + pad + 1)
    y1 = min(fh, math.ceil(allp[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    h, w = y1 - y0, x1 - x0

    body8 = np.zeros((h, w), np.uint8)
    cv2.fillPoly(body8, [_pts(outline, x0, y0)], 255, cv2.LINE_AA, _SHIFT)
    ear8 = np.zeros((h, w), np.uint8)
    ears: list[tuple[np.ndarray, np.ndarray, float]] = []
    if look.ear_size > 0:
        p, nrm, hw = geom.at(geom.neck + 0.12 * look.head_length)
        r = look.ear_size * scale
        ang = math.degrees(math.atan2(nrm[1], nrm[0]))
        for side in (1.0, -1.0):
            c = p + side * nrm * (hw - 0.1 * r)
            ears.append((c, nrm, r))
            cc = _pts(c[None, :], x0, y0)[0]
            axes = (max(1, round(r * _ONE)), max(1, round(0.72 * r * _ONE)))
            cv2.ellipse(ear8, (int(cc[0]), int(cc[1])), axes, ang, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    hard8 = np.maximum(body8, ear8)
    mask = hard8 >= 128
    tail8 = None
    if tail is not None and len(tail) > 1 and look.tail_width > 0:
        tail8 = np.zeros((h, w), np.uint8)
        tp = _pts(tail, x0, y0)
        n = len(tp)
        base_w = look.tail_width * scale
        for k in range(n - 1):
            f = k / max(n - 2, 1)
            thick = max(1, round(base_w * (1 - 0.7 * f)))
            value = round(255 * (1 - 0.45 * f))                     # the tip fades out
            cv2.line(tail8, (int(tp[k, 0]), int(tp[k, 1])), (int(tp[k + 1, 0]), int(tp[k + 1, 1])), value, thick,
                     cv2.LINE_AA, _SHIFT)
        if tail_in_mask:
            mask |= tail8 >= 128

    a_body = hard8.astype(np.float32) * (1 / 255)
    soft_sigma = look.edge_softness * scale
    shade = _smooth(a_body, 0.5 * half_w)                           # high along the back, ~half at the flanks
    back = shade / max(float(shade.max()), 1e-6)
    if soft_sigma >= 0.4:
        a_body = _smooth(a_body, soft_sigma)
    bright = 1 - look.shading * np.clip((1 - back) / 0.6, 0, 1)       # round body: darker towards the flanks
    color = np.asarray(look.color, np.float32)[None, None, :] * bright[..., None]
    if look.ear_size > 0:
        ea = ear8.astype(np.float32) * (1 / 255)
        if soft_sigma >= 0.4:
            ea = _smooth(ea, soft_sigma)
        ear_col = np.asarray(look.ear_color, np.float32)
        color += (ear_col - color) * (0.85 * ea)[..., None]
    if look.eyes:
        eye8 = np.zeros((h, w), np.uint8)
        p, nrm, hw = geom.at(geom.neck + 0.55 * look.head_length)
        r = max(0.5, 0.08 * look.head_width * scale)
        for side in (1.0, -1.0):
            cc = _pts((p + side * nrm * hw * 0.75)[None, :], x0, y0)[0]
            cv2.circle(eye8, (int(cc[0]), int(cc[1])), max(1, round(r * _ONE)), 255, -1, cv2.LINE_AA, _SHIFT)
        ey = eye8.astype(np.float32) * (1 / 255)
        color += (np.asarray(look.eye_color, np.float32) - color) * ey[..., None]

    premult = color * a_body[..., None]
    alpha = a_body
    if tail8 is not None and tail_alpha > 0:
        ta = tail8.astype(np.float32) * (tail_alpha / 255) * (1 - a_body)      # the tail goes under the body
        premult += np.asarray(look.tail_color, np.float32)[None, None, :] * ta[..., None]
        alpha = a_body + ta

    shadow = None
    if look.shadow > 0:
        dx, dy = (max(0, round(float(v))) for v in shadow_off)     # light from the top-left
        shifted = np.zeros_like(shade)
        if dx < w and dy < h:
            shifted[dy:, dx:] = shade[:h - dy, :w - dx]
        shadow = np.clip(shifted * 1.4, 0, 1) * look.shadow

    if blur is not None:
        kernel = motion_blur_kernel(*blur)
        if kernel is not None:
            premult = cv2.filter2D(premult, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            if shadow is not None:
                shadow = cv2.filter2D(shadow, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return AnimalSprite(x0=x0, y0=y0, premult=premult, alpha=np.clip(alpha, 0, 1), shadow=shadow, mask=mask,
                        area=int(mask.sum()))


def paste_sprite(image: np.ndarray, sprite: AnimalSprite) -> None:
    """Composite the sprite (its shadow first) over ``image`` in place."""
    h, w = sprite.alpha.shape
    roi = image[sprite.y0:sprite.y0 + h, sprite.x0:sprite.x0 + w]
    out = roi.astype(np.float32)
    if sprite.shadow is not None:
        out *= (1 - sprite.shadow)[..., None]
    out = out * (1 - sprite.alpha)[..., None] + sprite.premult
    roi[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
