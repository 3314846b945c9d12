"""Kinematics of the animals: behaviour modes, turning, walls, contacts. Deterministic given a Generator.

Positions are in scene units (image widths, y down), headings in radians (0 = +x, pi/2 = +y, i.e. down),
speeds in body lengths per second. Each animal runs a Markov chain over rest / walk / burst; within a mode
its heading follows a smooth random turn rate (an Ornstein-Uhlenbeck process) plus occasional sharp turns,
destinations (a floor point, the tunnel, another animal), steering away from walls and a soft push away from
other animals. After moving, hard constraints keep every body inside the floor and body centres at least
``min_distance`` body lengths apart, so animals may touch and overlap in part but never cover each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from samqa_framework.data.synthetic.arena import Floor, TunnelFrame
from samqa_framework.data.synthetic.scene import ModeSpec, MotionSpec

__all__ = ["BURST", "MODES", "REST", "WALK", "AnimalState", "MotionModel"]

MODES = ("rest", "walk", "burst")
REST, WALK, BURST = 0, 1, 2


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


@dataclass
class AnimalState:
    """One animal at one instant. Only x, y, heading are needed to draw it; the rest drives the dynamics."""

    x: float                        # body centre (scene units)
    y: float
    heading: float                  # radians
    speed: float = 0.0              # commanded forward speed (body lengths / s)
    vx: float = 0.0                 # actual velocity over the last step (scene units / s), drives motion blur
    vy: float = 0.0
    mode: int = WALK
    bend: float = 0.0               # body curvature (rad, + bends the head towards +heading)
    target_speed: float = 0.0
    mode_left: float = 1.0          # seconds left in the current mode
    omega_noise: float = 0.0        # random part of the turn rate (rad / s)
    turn_left: float = 0.0          # remaining angle of a sharp turn in progress (rad)
    goal_x: float = math.nan        # destination (nan: none)
    goal_y: float = math.nan
    goal_animal: int = -1           # index of the animal followed, -1: none
    goal_left: float = 0.0          # seconds before the destination is given up


class MotionModel:
    """Steps all animals together by one frame (``1 / fps`` seconds)."""

    def __init__(self, spec: MotionSpec, floor: Floor, body_lengths: Sequence[float],
                 body_widths: Sequence[float], fps: float, rng: np.random.Generator,
                 tunnel: TunnelFrame | None = None) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if len(body_lengths) != len(body_widths) or not body_lengths:
            raise ValueError("need one body length and width per animal")
        self.spec, self.floor, self.tunnel, self.rng = spec, floor, tunnel, rng
        self.lengths = [float(v) for v in body_lengths]
        self.widths = [float(v) for v in body_widths]
        self.dt = 1.0 / fps
        self.modes: tuple[ModeSpec, ModeSpec, ModeSpec] = (spec.rest, spec.walk, spec.burst)
        self.states = self._initial_states()

    # ------------------------------------------------------------------ setup
    def _initial_states(self) -> list[AnimalState]:
        rng, f = self.rng, self.floor
        states: list[AnimalState] = []
        for i, length in enumerate(self.lengths):
            margin = 0.6 * length
            best: tuple[float, float] | None = None
            for attempt in range(2000):
                x = rng.uniform(f.x0 + margin, max(f.x0 + margin, f.x1 - margin))
                y = rng.uniform(f.y0 + margin, max(f.y0 + margin, f.y1 - margin))
                spacing = 1.3 if attempt < 1000 else 0.7        # relax if the cage is crowded
                far = all(math.hypot(x - s.x, y - s.y) >= spacing * (length + self.lengths[j]) / 2
                          for j, s in enumerate(states))
                visible = self.tunnel is None or not self.tunnel.contains(x, y, margin=0.5 * length)
                if far and (visible or attempt >= 1000):
                    best = (x, y)
                    break
            if best is None:            # pathological cage: fall back to a grid slot
                best = (f.x0 + (i + 1) * (f.x1 - f.x0) / (len(self.lengths) + 1), (f.y0 + f.y1) / 2)
            st = AnimalState(x=best[0], y=best[1], heading=rng.uniform(-math.pi, math.pi))
            self._enter_mode(st, int(rng.choice(3, p=[0.3, 0.55, 0.15])))
            st.speed = st.target_speed
            states.append(st)
        self._constrain(states)
        return states

    def _enter_mode(self, st: AnimalState, mode: int) -> None:
        ms = self.modes[mode]
        st.mode = mode
        st.mode_left = max(0.1, self.rng.gamma(2.0, ms.duration / 2.0))      # less spread than exponential
        st.target_speed = max(0.0, ms.speed + ms.speed_std * self.rng.standard_normal())
        if mode == REST:
            st.goal_x = st.goal_y = math.nan
            st.goal_animal = -1
        if mode == BURST and self.rng.random() < 0.5:                           # darting off: turn as it starts
            self._start_sharp_turn(st)

    def _start_sharp_turn(self, st: AnimalState) -> None:
        angle = math.radians(self.spec.sharp_turn_angle) * self.rng.uniform(0.6, 1.4)
        st.turn_left = angle if self.rng.random() < 0.5 else -angle

    # ------------------------------------------------------------------ stepping
    def step(self) -> None:
        """Advance every animal by one frame."""
        old = [(s.x, s.y) for s in self.states]
        for i, st in enumerate(self.states):
            self._step_one(i, st)
        self._constrain(self.states)
        for st, (x, y) in zip(self.states, old, strict=True):
            st.vx, st.vy = (st.x - x) / self.dt, (st.y - y) / self.dt

    def _pick_goal(self, i: int, st: AnimalState) -> None:
        rng, sp, f = self.rng, self.spec, self.floor
        u = rng.random()
        st.goal_animal = -1
        st.goal_left = 6.0
        if self.tunnel is not None and u < sp.tunnel_preference:
            st.goal_x, st.goal_y = self.tunnel.sample_point(rng)
        elif len(self.states) > 1 and u < sp.tunnel_preference + sp.social_preference:
            others = [j for j in range(len(self.states)) if j != i]
            st.goal_animal = int(others[int(rng.integers(len(others)))])
            st.goal_x = st.goal_y = 0.0
        else:
            m = 0.6 * self.lengths[i]
            st.goal_x = rng.uniform(f.x0 + m, max(f.x0 + m, f.x1 - m))
            st.goal_y = rng.uniform(f.y0 + m, max(f.y0 + m, f.y1 - m))

    def _step_one(self, i: int, st: AnimalState) -> None:
        rng, sp, dt, f = self.rng, self.spec, self.dt, self.floor
        length = self.lengths[i]
        st.mode_left -= dt
        if st.mode_left <= 0:
            probs = np.asarray(self.modes[st.mode].next_probs, float)
            self._enter_mode(st, int(rng.choice(3, p=probs / probs.sum())))
        ms = self.modes[st.mode]
        moving = st.mode != REST
        if moving and math.isnan(st.goal_x) and rng.random() < sp.goal_rate * dt:
            self._pick_goal(i, st)

        # Random turning: OU process with the mode's stationary std.
        a = math.exp(-dt / sp.turn_tau)
        st.omega_noise = a * st.omega_noise + math.sqrt(1 - a * a) * ms.turn_std * rng.standard_normal()
        omega = st.omega_noise
        hx, hy = math.cos(st.heading), math.sin(st.heading)
        target = st.target_speed

        # Destination: steer towards it; arriving may end in a pause (resting in the tunnel, sniffing).
        if not math.isnan(st.goal_x):
            if st.goal_animal >= 0:
                other = self.states[st.goal_animal]
                gx, gy, reach = other.x, other.y, 0.75 * (length + self.lengths[st.goal_animal]) / 2
            else:
                gx, gy, reach = st.goal_x, st.goal_y, 0.3 * length
            st.goal_left -= dt
            if math.hypot(gx - st.x, gy - st.y) < reach or st.goal_left <= 0 or not moving:
                arrived = st.goal_left > 0 and moving
                st.goal_x = st.goal_y = math.nan
                st.goal_animal = -1
                if arrived and rng.random() < 0.5:
                    self._enter_mode(st, REST)
                    target = st.target_speed
            else:
                omega += sp.goal_gain * _wrap(math.atan2(gy - st.y, gx - st.x) - st.heading)

        # Walls: look ahead of the nose; steer towards the inside and slow down when facing a wall.
        ahead = (0.5 + sp.wall_margin) * length
        lx, ly = st.x + hx * ahead, st.y + hy * ahead
        margin = max(sp.wall_margin * length, 1e-6)
        px = max(0.0, 1 - (lx - f.x0) / margin) - max(0.0, 1 - (f.x1 - lx) / margin)
        py = max(0.0, 1 - (ly - f.y0) / margin) - max(0.0, 1 - (f.y1 - ly) / margin)
        push = math.hypot(px, py)
        if push > 0:
            dx, dy = hx + 2 * px, hy + 2 * py
            delta = _wrap(math.atan2(dy, dx) - st.heading)
            if abs(abs(delta) - math.pi) < 0.3:        # head-on: turn the way it was already turning
                delta = math.copysign(abs(delta), omega if omega != 0 else 1.0)
            omega += sp.wall_gain * min(push, 1.5) * delta
            facing = -(hx * px + hy * py) / push
            target *= 1 - 0.6 * min(push, 1.0) * max(0.0, facing)

        # Other animals: turn a little away when close, unless heading for them on purpose.
        for j, other in enumerate(self.states):
            if j == i or j == st.goal_animal:
                continue
            ox, oy = st.x - other.x, st.y - other.y
            d = math.hypot(ox, oy)
            near = sp.repulsion_distance * (length + self.lengths[j]) / 2
            if 0 < d < near and moving:
                delta = _wrap(math.atan2(oy, ox) - st.heading)
                omega += 0.5 * sp.wall_gain * (1 - d / near) * delta

        # Sharp turns: a fast change of heading spread over ``sharp_turn_time``.
        if moving and st.turn_left == 0 and rng.random() < sp.sharp_turn_rate * dt:
            self._start_sharp_turn(st)
        if st.turn_left != 0:
            rate = math.radians(sp.sharp_turn_angle) * 1.4 / sp.sharp_turn_time
            step = max(-rate * dt, min(rate * dt, st.turn_left))
            st.turn_left -= step
            if abs(st.turn_left) < 1e-9:
                st.turn_left = 0.0
            omega += step / dt

        st.heading = _wrap(st.heading + omega * dt)
        st.speed += (target - st.speed) * (1 - math.exp(-dt / sp.speed_tau))
        st.x += math.cos(st.heading) * st.speed * length * dt
        st.y += math.sin(st.heading) * st.speed * length * dt
        bend = max(-sp.max_bend, min(sp.max_bend, sp.bend_gain * omega))
        st.bend += (bend - st.bend) * (1 - math.exp(-dt / 0.08))

    # ------------------------------------------------------------------ constraints
    def _clamp_to_floor(self, i: int, st: AnimalState) -> None:
        """Shift the body so that nose, rump and flanks are on the floor."""
        f = self.floor
        hl, hw = self.lengths[i] / 2, self.widths[i] / 2
        c, s = math.cos(st.heading), math.sin(st.heading)
        ex, ey = abs(c) * hl + abs(s) * hw, abs(s) * hl + abs(c) * hw       # half extents of the body box
        for attr, lo, hi, e in (("x", f.x0, f.x1, ex), ("y", f.y0, f.y1, ey)):
            v = getattr(st, attr)
            if hi - lo < 2 * e:
                v = (lo + hi) / 2
            else:
                v = min(max(v, lo + e), hi - e)
            setattr(st, attr, v)

    def _separate(self, states: Sequence[AnimalState], soft: bool) -> bool:
        """Push pairs apart; returns whether any pair was closer than the hard minimum."""
        sp, dt = self.spec, self.dt
        violated = False
        n = len(states)
        for i in range(n):
            for j in range(i + 1, n):
                a, b = states[i], states[j]
                mean_len = (self.lengths[i] + self.lengths[j]) / 2
                dx, dy = b.x - a.x, b.y - a.y
                d = math.hypot(dx, dy)
                if d < 1e-9:                                 # coincident: split along a fixed direction
                    dx, dy, d = 1.0, 0.0, 1e-9
                ux, uy = dx / d, dy / d
                move = 0.0
                if soft and d < sp.repulsion_distance * mean_len:
                    move += sp.repulsion_gain * (sp.repulsion_distance * mean_len - d) * dt
                hard = sp.min_distance * mean_len
                if d + move < hard:
                    move = hard - d
                    violated = True
                if move > 0:
                    a.x -= ux * move / 2
                    a.y -= uy * move / 2
                    b.x += ux * move / 2
                    b.y += uy * move / 2
        return violated

    def _constrain(self, states: Sequence[AnimalState]) -> None:
        self._separate(states, soft=True)
        for _ in range(6):
            for i, st in enumerate(states):
                self._clamp_to_floor(i, st)
            if not self._separate(states, soft=False):
                break
