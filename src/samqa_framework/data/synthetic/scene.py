"""Parameters of a synthetic cage scene, as frozen dataclasses built from a plain nested mapping.

Units, chosen so that one spec renders the same scene at 320x240 and at 1640x1232:

* lengths of the arena, the tunnel and the animal's size are fractions of the image WIDTH;
* the animal's parts (head, ears, tail) are fractions of its own body length (BL);
* positions (the tunnel's centre) are fractions of the image width (x) and height (y);
* speeds are body lengths per second, times are seconds; the tunnel's angle and sharp turns are in
  degrees, turn rates (``turn_std``) in rad/s and body bends in radians;
* colours are BGR triples in 0..255 (OpenCV's order), noise amplitudes are in grey levels (0..255).

``SceneSpec.from_dict`` takes what Hydra passes (a nested dict) and names the full key of any typo, so a
misspelt preset fails at load time instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from samqa_framework.utils.config import to_plain

Color = tuple[float, float, float]

__all__ = ["AnimalSpec", "ArenaSpec", "Color", "ModeSpec", "MotionSpec", "SceneSpec", "TunnelSpec"]


class _FieldError(ValueError):
    """A bad value found by a spec's own checks; ``from_dict`` prefixes the field with its full key."""

    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message
        super().__init__(f"{name}: {message}")


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise _FieldError(name, message)


def _check_color(value: Sequence[float], name: str) -> None:
    _check(len(value) == 3 and all(0.0 <= float(c) <= 255.0 for c in value), name,
           f"must be 3 BGR values in 0..255, got {tuple(value)}")


def _check_unit(value: float, name: str) -> None:
    _check(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ArenaSpec:
    """The static cage floor (bedding) and the walls around it, seen from above."""

    floor_color: Color = (95.0, 118.0, 140.0)     # mean bedding colour (BGR)
    floor_texture: float = 10.0                   # std of the blotchy low-frequency bedding variation (grey levels)
    chip_size: float = 0.012                      # length of one bedding chip (fraction of width)
    chip_density: float = 1.2                     # chips per chip-area of floor (>1: chips overlap)
    chip_contrast: float = 0.12                   # relative brightness spread between chips
    floor_gradient: float = 0.15                  # illumination fall-off from the centre to the corners
    wall_width: float = 0.04                      # wall band at the image border (fraction of width)
    wall_color: Color = (170.0, 175.0, 178.0)     # colour of the cage wall band
    wall_shading: float = 0.35                    # brightness ramp across the wall band (rim light, foot dark)
    wall_shadow: float = 0.3                      # darkening of the floor right next to the walls
    wall_shadow_width: float = 0.03               # how far that shadow reaches onto the floor (fraction of width)

    def __post_init__(self) -> None:
        _check_color(self.floor_color, "floor_color")
        _check_color(self.wall_color, "wall_color")
        _check(self.floor_texture >= 0, "floor_texture", "must be >= 0")
        _check(self.chip_size > 0, "chip_size", "must be > 0")
        _check(self.chip_density >= 0, "chip_density", "must be >= 0")
        _check(self.chip_contrast >= 0, "chip_contrast", "must be >= 0")
        _check_unit(self.floor_gradient, "floor_gradient")
        _check(0.0 <= self.wall_width < 0.3, "wall_width", "must be in [0, 0.3)")
        _check_unit(self.wall_shading, "wall_shading")
        _check_unit(self.wall_shadow, "wall_shadow")
        _check(self.wall_shadow_width > 0, "wall_shadow_width", "must be > 0")


@dataclass(frozen=True)
class TunnelSpec:
    """The semi-transparent red enrichment tunnel, drawn OVER the animals so it hides them."""

    enabled: bool = True
    center: tuple[float, float] = (0.62, 0.62)    # (x fraction of width, y fraction of height)
    length: float = 0.32                          # along its axis (fraction of width)
    width: float = 0.11                           # across (fraction of width)
    angle: float = 0.0                            # axis direction, degrees (0: horizontal)
    color: Color = (45.0, 35.0, 190.0)            # tinted plastic (BGR: red)
    opacity: float = 0.8                          # alpha of the plastic in the middle of the tube
    rim_opacity: float = 0.93                     # alpha at the tube's long edges (more plastic in the view)
    rim_width: float = 0.012                      # width of those edges (fraction of width)
    highlight: float = 0.3                        # strength of the specular stripe along the top

    def __post_init__(self) -> None:
        _check(len(self.center) == 2, "center", "must be (x, y)")
        _check(self.length > 0 and self.width > 0, "length", "length and width must be > 0")
        _check_color(self.color, "color")
        _check_unit(self.opacity, "opacity")
        _check_unit(self.rim_opacity, "rim_opacity")
        _check(self.rim_width >= 0, "rim_width", "must be >= 0")
        _check_unit(self.highlight, "highlight")


@dataclass(frozen=True)
class AnimalSpec:
    """One rodent seen from above; every animal of a scene is drawn from this with small jitter."""

    body_length: float = 0.18                     # nose to tail base (fraction of width)
    body_width: float = 0.42                      # widest point of the body (fraction of body length)
    head_length: float = 0.3                      # neck to nose (fraction of body length)
    head_width: float = 0.26                      # widest point of the head (fraction of body length)
    size_jitter: float = 0.05                     # relative std of the per-animal size
    color: Color = (225.0, 230.0, 235.0)          # fur colour (BGR)
    color_jitter: float = 0.04                    # relative std of the per-animal brightness
    shading: float = 0.3                          # how much darker the flanks are than the back (3-D look)
    edge_softness: float = 0.006                  # blur of the fur outline (fraction of body length)
    ears: bool = True
    ear_size: float = 0.07                        # ear radius (fraction of body length)
    ear_color: Color = (175.0, 180.0, 225.0)
    eyes: bool = True
    eye_color: Color = (60.0, 40.0, 150.0)
    tail_length: float = 0.9                      # (fraction of body length)
    tail_width: float = 0.05                      # at the base (fraction of body length); tapers to the tip
    tail_color: Color = (165.0, 175.0, 215.0)
    tail_alpha: float = 0.9                       # mean opacity of the tail over time (0: never seen)
    tail_alpha_std: float = 0.12                  # how much that opacity wanders (curled under, lifted, blurred)
    tail_alpha_tau: float = 1.5                   # time scale of that wandering (s)
    tail_wave: float = 0.06                       # sideways swing of the tail (fraction of tail length)
    shadow: float = 0.25                          # darkening of the floor under the animal (0: no shadow)

    def __post_init__(self) -> None:
        _check(0 < self.body_length < 1, "body_length", "must be in (0, 1)")
        _check(0 < self.body_width <= 1, "body_width", "must be in (0, 1]")
        _check(0 < self.head_length < 0.6, "head_length", "must be in (0, 0.6)")
        _check(0 < self.head_width <= self.body_width, "head_width", "must be in (0, body_width]")
        _check(0 <= self.size_jitter < 0.3, "size_jitter", "must be in [0, 0.3)")
        for name in ("color", "ear_color", "eye_color", "tail_color"):
            _check_color(getattr(self, name), name)
        _check(self.color_jitter >= 0, "color_jitter", "must be >= 0")
        _check_unit(self.shading, "shading")
        _check(self.edge_softness >= 0, "edge_softness", "must be >= 0")
        _check(self.ear_size >= 0, "ear_size", "must be >= 0")
        _check(self.tail_length >= 0, "tail_length", "must be >= 0")
        _check(self.tail_width >= 0, "tail_width", "must be >= 0")
        _check_unit(self.tail_alpha, "tail_alpha")
        _check(self.tail_alpha_std >= 0, "tail_alpha_std", "must be >= 0")
        _check(self.tail_alpha_tau > 0, "tail_alpha_tau", "must be > 0")
        _check(self.tail_wave >= 0, "tail_wave", "must be >= 0")
        _check_unit(self.shadow, "shadow")


@dataclass(frozen=True)
class ModeSpec:
    """One behaviour mode of the Markov chain rest -> walk -> burst."""

    speed: float = 1.0                            # target speed (body lengths per second)
    speed_std: float = 0.3                        # per-visit spread of that target
    duration: float = 2.0                         # mean time spent in the mode (s)
    turn_std: float = 1.0                         # std of the random angular velocity (rad/s)
    next_probs: tuple[float, float, float] = (0.0, 0.5, 0.5)   # P(next mode = rest, walk, burst)

    def __post_init__(self) -> None:
        _check(self.speed >= 0 and self.speed_std >= 0, "speed", "speed and speed_std must be >= 0")
        _check(self.duration > 0, "duration", "must be > 0")
        _check(self.turn_std >= 0, "turn_std", "must be >= 0")
        _check(len(self.next_probs) == 3 and min(self.next_probs) >= 0 and sum(self.next_probs) > 0,
               "next_probs", "must be 3 non-negative weights (rest, walk, burst), not all zero")


@dataclass(frozen=True)
class MotionSpec:
    """How animals move: Markov behaviour modes, turning, walls, contacts, goals."""

    rest: ModeSpec = field(default_factory=lambda: ModeSpec(
        speed=0.0, speed_std=0.0, duration=1.5, turn_std=0.6, next_probs=(0.0, 0.8, 0.2)))
    walk: ModeSpec = field(default_factory=lambda: ModeSpec(
        speed=1.2, speed_std=0.35, duration=2.5, turn_std=1.4, next_probs=(0.55, 0.0, 0.45)))
    burst: ModeSpec = field(default_factory=lambda: ModeSpec(
        speed=4.5, speed_std=1.0, duration=0.45, turn_std=2.5, next_probs=(0.35, 0.65, 0.0)))
    speed_tau: float = 0.12                       # time to reach a new target speed (s)
    turn_tau: float = 0.35                        # correlation time of the random turning (s)
    sharp_turn_rate: float = 0.35                 # sharp turns per second while moving
    sharp_turn_angle: float = 110.0               # mean size of a sharp turn (deg)
    sharp_turn_time: float = 0.15                 # time a sharp turn takes (s)
    wall_margin: float = 0.6                      # start steering this far ahead of the wall (body lengths)
    wall_gain: float = 5.0                        # how hard walls steer (1/s)
    min_distance: float = 0.5                     # body centres never closer than this (body lengths)
    repulsion_distance: float = 0.85              # soft push apart below this distance (body lengths)
    repulsion_gain: float = 1.5                   # strength of that push (body lengths per second per BL)
    goal_rate: float = 0.35                       # new destinations per second while moving
    tunnel_preference: float = 0.3                # share of destinations inside the tunnel
    social_preference: float = 0.3                # share of destinations at another animal (contacts)
    goal_gain: float = 2.5                        # how hard a destination steers (1/s)
    bend_gain: float = 0.18                       # body bend (rad) per rad/s of turning
    max_bend: float = 0.7                         # largest body bend (rad)

    def __post_init__(self) -> None:
        for name in ("speed_tau", "turn_tau", "sharp_turn_time"):
            _check(getattr(self, name) > 0, name, "must be > 0")
        for name in ("sharp_turn_rate", "sharp_turn_angle", "wall_margin", "wall_gain", "repulsion_gain",
                     "goal_rate", "goal_gain", "bend_gain", "max_bend"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        _check(0 < self.min_distance <= self.repulsion_distance, "min_distance",
               "must be > 0 and <= repulsion_distance")
        _check_unit(self.tunnel_preference, "tunnel_preference")
        _check_unit(self.social_preference, "social_preference")
        _check(self.tunnel_preference + self.social_preference <= 1, "social_preference",
               "tunnel_preference + social_preference must be <= 1")


Z_ORDERS = ("y", "fixed")


@dataclass(frozen=True)
class SceneSpec:
    """Everything that defines how a scene looks and moves (not its size, frame rate or animal count)."""

    arena: ArenaSpec = field(default_factory=ArenaSpec)
    tunnel: TunnelSpec = field(default_factory=TunnelSpec)
    animal: AnimalSpec = field(default_factory=AnimalSpec)
    motion: MotionSpec = field(default_factory=MotionSpec)
    tail_in_mask: bool = False                    # ground-truth masks include the tail
    noise_std: float = 2.5                        # Gaussian sensor noise (grey levels)
    blur_exposure: float = 0.6                    # shutter open time / frame interval (0: no motion blur)
    blur_min_speed: float = 1.5                   # blur only animals faster than this (body lengths per second)
    z_order: str = "y"                            # 'y': lower in the image is drawn on top; 'fixed': by id
    min_visible_fraction: float = 0.2             # an animal hidden more than this by others is drawn on top

    def __post_init__(self) -> None:
        _check(self.noise_std >= 0, "noise_std", "must be >= 0")
        _check(self.blur_exposure >= 0, "blur_exposure", "must be >= 0")
        _check(self.blur_min_speed >= 0, "blur_min_speed", "must be >= 0")
        _check(self.z_order in Z_ORDERS, "z_order", f"must be one of {Z_ORDERS}, got {self.z_order!r}")
        _check_unit(self.min_visible_fraction, "min_visible_fraction")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, prefix: str = "scene") -> SceneSpec:
        """Build from a plain nested mapping; missing keys keep their defaults.

        Raises ValueError naming the full key (``'scene.animal.colr'``) of an unknown key or a bad value.
        """
        return _build(cls, d, prefix)

    def to_dict(self) -> dict[str, Any]:
        """The plain nested mapping (tuples as lists) that ``from_dict`` turns back into this spec."""
        return to_plain(dataclasses.asdict(self))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check and convert one leaf value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"'{key}' must be a mapping, got {type(value).__name__}")
        return _build(tp, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise ValueError(f"'{key}' must be a list of {len(args)} numbers, got {value!r}")
        if len(value) != len(args):
            raise ValueError(f"'{key}' must have {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported union type at '{key}'")  # no spec field uses one
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"'{key}' must be an integer, got {value!r}")
        return int(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"'{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {tp!r} at '{key}'")


def _build(cls: Any, d: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        full = f"{prefix}.{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{prefix}.{close[0]}'?)" if close else f"; known keys: {', '.join(names)}"
            raise ValueError(f"unknown key '{full}'{hint}")
        if value is None:
            raise ValueError(f"'{full}' must not be null")
        kwargs[key] = _convert(value, hints[key], full)
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        raise ValueError(f"'{prefix}.{exc.name}': {exc.message}") from None
