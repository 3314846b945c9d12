"""Render a synthetic cage video frame by frame, with exact instance masks and visibilities.

Per frame: copy the static background -> draw the animals in z-order (each in its own crop, motion-blurred
at speed) -> blend the tunnel over them -> add mild Gaussian sensor noise. Frames are produced by a
generator and nothing is kept between frames except the animals' state and short tail trails, so memory
does not grow with the number of frames. The same seed gives byte-identical frames and masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from samqa_framework.data.synthetic.animal import (
    AnimalLook,
    AnimalSprite,
    TailTrail,
    body_geometry,
    draw_animal,
    paste_sprite,
    sample_look,
)
from samqa_framework.data.synthetic.arena import floor_bounds, render_background, render_tunnel, tunnel_frame
from samqa_framework.data.synthetic.motion import AnimalState, MotionModel
from samqa_framework.data.synthetic.scene import SceneSpec

__all__ = ["RenderedFrame", "SceneRenderer"]

_NOISE_PAD = 16             # the noise bank is this much larger than a frame; each frame uses a random window
_TAIL_POINTS = 14


@dataclass
class RenderedFrame:
    """One frame and its ground truth."""

    image: np.ndarray           # (H, W, 3) uint8, BGR
    ids: np.ndarray             # (K,) int64, identities 1..K, the same animal keeps its id
    masks: np.ndarray           # (K, H, W) bool, visible body+head after occlusion by other animals; disjoint
    visibility: np.ndarray      # (K,) float64 in [0, 1]: visible share of the full body+head area


class SceneRenderer:
    """A seeded synthetic scene of ``num_animals`` rodents in a cage at a given size and frame rate."""

    def __init__(self, spec: SceneSpec, num_animals: int, width: int, height: int, fps: float, seed: int) -> None:
        if num_animals < 1:
            raise ValueError(f"num_animals must be >= 1, got {num_animals}")
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.spec, self.num_animals = spec, int(num_animals)
        self.width, self.height, self.fps, self.seed = int(width), int(height), float(fps), int(seed)
        self.scale = float(self.width)                    # pixels per scene unit
        # Independent streams, so e.g. the background does not change when the motion code draws more numbers.
        bg_ss, look_ss, motion_ss, noise_ss, frame_ss = np.random.SeedSequence(self.seed).spawn(5)
        self._motion_ss, self._frame_ss = motion_ss, frame_ss
        self.background = render_background(spec.arena, self.width, self.height, np.random.default_rng(bg_ss))
        self.tunnel = render_tunnel(spec.tunnel, self.width, self.height)
        self._hidden = (self.tunnel.hidden_full(self.height, self.width) if self.tunnel is not None
                        else np.zeros((self.height, self.width), bool))
        look_rng = np.random.default_rng(look_ss)
        self.looks: list[AnimalLook] = [sample_look(spec.animal, look_rng) for _ in range(self.num_animals)]
        self.floor = floor_bounds(spec.arena, self.width, self.height)
        self._noise_pos, self._noise_neg = self._noise_bank(np.random.default_rng(noise_ss))
        self.ids = np.arange(1, self.num_animals + 1, dtype=np.int64)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Back to frame 0 of this seed's sequence."""
        self.motion = MotionModel(
            self.spec.motion, self.floor, [lk.body_length for lk in self.looks],
            [lk.body_width for lk in self.looks], self.fps, np.random.default_rng(self._motion_ss),
            tunnel_frame(self.spec.tunnel, self.width, self.height))
        self._frame_rng = np.random.default_rng(self._frame_ss)
        a = self.spec.animal
        self._trails = [TailTrail(lk.tail_length) for lk in self.looks]
        self._tail_alpha = np.clip(a.tail_alpha + a.tail_alpha_std * self._frame_rng.standard_normal(
            self.num_animals), 0, 1)
        self._tail_phase = self._frame_rng.uniform(0, 2 * math.pi, self.num_animals)

    @property
    def states(self) -> list[AnimalState]:
        """The animals' current states (what ``draw`` renders next)."""
        return self.motion.states

    def _advance_appearance(self) -> None:
        """Tail opacity wanders (OU process); the tail swings faster when the animal moves."""
        a, dt = self.spec.animal, 1.0 / self.fps
        k = math.exp(-dt / a.tail_alpha_tau)
        noise = self._frame_rng.standard_normal(self.num_animals)
        self._tail_alpha = np.clip(a.tail_alpha + k * (self._tail_alpha - a.tail_alpha)
                                   + math.sqrt(1 - k * k) * a.tail_alpha_std * noise, 0, 1)
        speeds = np.array([s.speed for s in self.states])
        self._tail_phase = (self._tail_phase + 2 * math.pi * dt * (0.4 + 0.6 * speeds)) % (2 * math.pi)

    def _noise_bank(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """Positive and negative parts of a noise field a bit larger than the frame (added with saturation)."""
        if self.spec.noise_std <= 0:
            return None, None
        shape = (self.height + _NOISE_PAD, self.width + _NOISE_PAD, 3)
        n = np.rint(rng.standard_normal(shape, dtype=np.float32) * self.spec.noise_std)
        n = np.clip(n, -255, 255)
        return np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8)

    # ------------------------------------------------------------------ rendering
    def render(self, num_frames: int) -> Iterator[RenderedFrame]:
        """Frames 0..num_frames-1 of this seed's sequence, one at a time (restarts from frame 0)."""
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        self.reset()
        for t in range(num_frames):
            if t > 0:
                self.motion.step()
                self._advance_appearance()
            yield self.draw(self.motion.states)

    def draw(self, states: Sequence[AnimalState]) -> RenderedFrame:
        """Render the given animal states (e.g. set by hand) as the next frame."""
        if len(states) != self.num_animals:
            raise ValueError(f"expected {self.num_animals} states, got {len(states)}")
        spec, scale = self.spec, self.scale
        sprites: list[AnimalSprite] = []
        for k, (st, look) in enumerate(zip(states, self.looks, strict=True)):
            geom = body_geometry(look, st.x, st.y, st.heading, st.bend, scale)
            rump = geom.rump / scale
            trail = self._trails[k]
            trail.push(float(rump[0]), float(rump[1]))
            tail = None
            if look.tail_length > 0:
                tail = trail.polyline(rump, geom.rump_direction, _TAIL_POINTS, float(self._tail_phase[k]),
                                      look.tail_wave) * scale
            blur = None
            speed = math.hypot(st.vx, st.vy)
            if spec.blur_exposure > 0 and speed > spec.blur_min_speed * look.body_length:
                f = scale * spec.blur_exposure / self.fps
                blur = (st.vx * f, st.vy * f)
            sprite = draw_animal(look, geom, tail, float(self._tail_alpha[k]), blur, (self.height, self.width),
                                 scale, spec.tail_in_mask)
            if sprite is None or sprite.area == 0:
                raise RuntimeError(f"animal {k + 1} is off the frame at ({st.x:.3f}, {st.y:.3f})")
            sprites.append(sprite)

        order = self._z_order(states)
        visible, order = self._resolve_occlusion(sprites, order)
        image = self.background.copy()
        for k in order:                                   # bottom to top
            paste_sprite(image, sprites[k])
        if self.tunnel is not None:
            self.tunnel.apply(image)
        self._add_noise(image)

        masks = np.zeros((self.num_animals, self.height, self.width), bool)
        vis = np.zeros(self.num_animals, np.float64)
        for k, sp in enumerate(sprites):
            x0, y0, x1, y1 = sp.box
            masks[k, y0:y1, x0:x1] = visible[k]
            seen = int(np.count_nonzero(visible[k] & ~self._hidden[y0:y1, x0:x1]))
            vis[k] = seen / sp.area
        return RenderedFrame(image=image, ids=self.ids.copy(), masks=masks, visibility=vis)

    def _z_order(self, states: Sequence[AnimalState]) -> list[int]:
        """Drawing order, bottom first: 'y' puts animals lower in the image on top, 'fixed' the higher id."""
        if self.spec.z_order == "y":
            return sorted(range(len(states)), key=lambda k: (states[k].y, k))
        return list(range(len(states)))

    def _resolve_occlusion(self, sprites: Sequence[AnimalSprite],
                           order: list[int]) -> tuple[list[np.ndarray], list[int]]:
        """Visible mask of each sprite (crop-sized) given the order; animals hidden too much are lifted on top.

        Centres are kept apart by the motion model, so lifting the most-hidden animal to the top always
        leaves every animal some pixels; the order with the best worst-case visibility is kept.
        """
        best: tuple[float, list[np.ndarray], list[int]] | None = None
        for _ in range(len(order)):
            visible = self._visible_masks(sprites, order)
            fracs = [int(np.count_nonzero(v)) / sp.area for v, sp in zip(visible, sprites, strict=True)]
            worst = min(fracs)
            if best is None or worst > best[0]:
                best = (worst, visible, list(order))
            if worst >= self.spec.min_visible_fraction or len(order) == 1:
                break
            k = min(range(len(fracs)), key=lambda i: (fracs[i], i))
            order = [i for i in order if i != k] + [k]
        assert best is not None
        return best[1], best[2]

    def _visible_masks(self, sprites: Sequence[AnimalSprite], order: Sequence[int]) -> list[np.ndarray]:
        taken = np.zeros((self.height, self.width), bool)
        visible: list[np.ndarray] = [np.zeros(0, bool)] * len(sprites)
        for k in reversed(order):                         # top first: it keeps all its pixels
            sp = sprites[k]
            x0, y0, x1, y1 = sp.box
            region = taken[y0:y1, x0:x1]
            visible[k] = sp.mask & ~region
            region |= sp.mask
        return visible

    def _add_noise(self, image: np.ndarray) -> None:
        if self._noise_pos is None or self._noise_neg is None:
            return
        oy, ox = (int(v) for v in self._frame_rng.integers(0, _NOISE_PAD + 1, 2))
        pos = self._noise_pos[oy:oy + self.height, ox:ox + self.width]
        neg = self._noise_neg[oy:oy + self.height, ox:ox + self.width]
        if self._frame_rng.random() < 0.5:
            pos, neg = neg, pos
        cv2.add(image, pos, dst=image)
        cv2.subtract(image, neg, dst=image)
