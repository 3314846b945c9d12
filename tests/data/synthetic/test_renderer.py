"""The synthetic cage renderer: determinism, ground-truth masks and visibility, blur, spec loading."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from samqa_framework.data.synthetic import RenderedFrame, SceneRenderer, SceneSpec
from samqa_framework.data.synthetic.motion import AnimalState

PRESETS = Path(__file__).resolve().parents[3] / "conf" / "data" / "scene"
W, H = 160, 120


def preset(name: str) -> SceneSpec:
    return SceneSpec.from_dict(yaml.safe_load((PRESETS / f"{name}.yaml").read_text()))


def frames(spec: SceneSpec, n_animals: int, n: int, seed: int = 0) -> list[RenderedFrame]:
    return list(SceneRenderer(spec, n_animals, W, H, 30.0, seed).render(n))


def quiet(spec: SceneSpec) -> SceneSpec:
    """No sensor noise, so two draws of the same state can be compared pixel by pixel."""
    return dataclasses.replace(spec, noise_std=0.0)


def test_same_seed_gives_identical_frames() -> None:
    a, b = frames(preset("mice"), 4, 15, seed=7), frames(preset("mice"), 4, 15, seed=7)
    for fa, fb in zip(a, b, strict=True):
        assert fa.image.tobytes() == fb.image.tobytes()
        assert np.array_equal(fa.masks, fb.masks)
        assert np.array_equal(fa.visibility, fb.visibility)


def test_render_restarts_from_frame_zero() -> None:
    r = SceneRenderer(preset("rats"), 2, W, H, 30.0, seed=1)
    first = [f.image for f in r.render(6)]
    again = [f.image for f in r.render(6)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))


def test_different_seeds_differ() -> None:
    a, b = frames(preset("rats"), 2, 3, seed=0), frames(preset("rats"), 2, 3, seed=1)
    assert not np.array_equal(a[0].image, b[0].image)
    assert not np.array_equal(a[-1].masks, b[-1].masks)


def test_render_is_a_lazy_stream() -> None:
    r = SceneRenderer(SceneSpec(), 2, W, H, 30.0, seed=0)
    stream = r.render(10**9)            # must not render (or allocate) anything up front
    assert inspect.isgenerator(stream)
    assert isinstance(next(stream), RenderedFrame)


@pytest.mark.parametrize("name,n_animals", [("rats", 2), ("mice", 4)])
def test_ground_truth_is_consistent_every_frame(name: str, n_animals: int) -> None:
    spec = preset(name)
    r = SceneRenderer(spec, n_animals, W, H, 30.0, seed=3)
    floor = r.floor
    closest = math.inf
    for f in r.render(150):
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert f.masks.shape == (n_animals, H, W) and f.masks.dtype == bool
        assert f.ids.tolist() == list(range(1, n_animals + 1))
        assert f.visibility.shape == (n_animals,)
        assert np.all((f.visibility >= 0) & (f.visibility <= 1))
        assert np.all(f.masks.reshape(n_animals, -1).any(axis=1)), "an animal has an empty mask"
        assert f.masks.sum(axis=0).max() <= 1, "masks of two animals overlap"
        # every animal stays on the floor, inside the walls (1 px for rounding)
        ys, xs = np.nonzero(f.masks.any(axis=0))
        assert xs.min() >= floor.x0 * W - 1 and xs.max() <= floor.x1 * W + 1
        assert ys.min() >= floor.y0 * W - 1 and ys.max() <= floor.y1 * W + 1
        lengths = [lk.body_length for lk in r.looks]
        for i in range(n_animals):
            for j in range(i + 1, n_animals):
                a, b = r.states[i], r.states[j]
                d = math.hypot(a.x - b.x, a.y - b.y) / ((lengths[i] + lengths[j]) / 2)
                closest = min(closest, d)
    assert closest >= spec.motion.min_distance - 1e-6


def test_motion_constraints_hold_when_pushed() -> None:
    """Animals driven into a wall stay on the floor; animals driven into each other stop at min_distance."""
    spec = SceneSpec()
    r = SceneRenderer(spec, 2, W, H, 30.0, seed=0)
    m, floor = r.motion, r.floor
    bl = r.looks[0].body_length
    a, b = m.states
    a.x, a.y, a.heading, a.speed, a.target_speed = floor.x0 + 0.6 * bl, 0.35, math.pi, 8.0, 8.0
    a.mode, a.mode_left = 2, 10.0
    b.x, b.y, b.heading = 0.5, 0.3, 0.0
    for _ in range(5):
        m.step()
        ex = abs(math.cos(a.heading)) * bl / 2 + abs(math.sin(a.heading)) * r.looks[0].body_width / 2
        assert a.x - ex >= floor.x0 - 1e-9                  # its nose or flank would be in the wall otherwise
    b.x, b.y = a.x + 0.01 * bl, a.y                        # (almost) on top of each other
    b.heading, a.heading = math.pi, 0.0
    m.step()
    mean_len = (r.looks[0].body_length + r.looks[1].body_length) / 2
    assert math.hypot(a.x - b.x, a.y - b.y) >= spec.motion.min_distance * mean_len - 1e-9


def test_overlapping_animals_get_disjoint_masks_and_lower_visibility() -> None:
    r = SceneRenderer(quiet(SceneSpec()), 2, W, H, 30.0, seed=0)
    bl = r.looks[0].body_length
    y = 0.3                                   # away from the default tunnel
    states = [AnimalState(x=0.3, y=y, heading=0.0), AnimalState(x=0.3 + 0.55 * bl, y=y + 0.1 * bl, heading=0.5)]
    f = r.draw(states)
    assert f.masks.sum(axis=0).max() == 1
    assert f.masks[0].any() and f.masks[1].any()
    assert f.visibility.min() < 0.95           # one of them is partly covered by the other
    assert f.visibility.max() == 1.0           # ... and the top one is not


def test_animal_under_the_tunnel_is_mostly_invisible_but_keeps_its_mask() -> None:
    spec = quiet(preset("rats"))
    r = SceneRenderer(spec, 2, W, H, 30.0, seed=0)
    assert r.tunnel is not None
    cx, cy = spec.tunnel.center[0], spec.tunnel.center[1] * H / W
    angle = math.radians(spec.tunnel.angle)
    states = [AnimalState(x=cx, y=cy, heading=angle), AnimalState(x=0.2, y=0.2, heading=0.0)]
    f = r.draw(states)
    assert f.visibility[0] < 0.3
    assert f.visibility[1] == 1.0
    assert f.masks[0].sum() > 0.8 * f.masks[1].sum()      # the tunnel does not remove ground-truth pixels
    # and the pixels there really are the tunnel's: much redder than the animal drawn in the open
    inside = f.image[f.masks[0]].astype(float).mean(axis=0)
    outside = f.image[f.masks[1]].astype(float).mean(axis=0)
    assert inside[2] - inside[0] > 80 and outside[2] - outside[0] < 40


def test_motion_blur_smears_fast_animals_only() -> None:
    spec = dataclasses.replace(quiet(SceneSpec()), blur_exposure=1.0, blur_min_speed=1.5)
    bl = spec.animal.body_length

    def draw(speed_bl: float) -> RenderedFrame:
        r = SceneRenderer(spec, 1, W, H, 30.0, seed=0)
        st = AnimalState(x=0.4, y=0.3, heading=0.0, vx=speed_bl * bl, vy=0.0)
        return r.draw([st])

    still, slow, fast = draw(0.0), draw(1.0), draw(6.0)
    assert np.array_equal(still.image, slow.image)                # below the threshold: no blur
    diff = np.abs(still.image.astype(int) - fast.image.astype(int)).sum(axis=2)
    assert (diff > 30).sum() > 0.1 * still.masks[0].sum()         # blurred at speed
    assert np.array_equal(still.masks, fast.masks)                # ground truth is the sharp body


def test_tail_in_mask_adds_the_tail() -> None:
    base = quiet(preset("rats"))
    st = [AnimalState(x=0.4, y=0.3, heading=0.0)]
    without = SceneRenderer(base, 1, W, H, 30.0, seed=0).draw(st)
    with_tail = SceneRenderer(dataclasses.replace(base, tail_in_mask=True), 1, W, H, 30.0, seed=0).draw(st)
    assert with_tail.masks.sum() > without.masks.sum()
    assert np.all(with_tail.masks[without.masks])


def test_from_dict_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'scene\.animal\.colr'"):
        SceneSpec.from_dict({"animal": {"colr": [1, 2, 3]}})
    with pytest.raises(ValueError, match=r"scene\.motion\.walk\.sped"):
        SceneSpec.from_dict({"motion": {"walk": {"sped": 2.0}}})
    with pytest.raises(ValueError, match=r"unknown key 'scene\.tunel'"):
        SceneSpec.from_dict({"tunel": {}})


def test_from_dict_checks_values() -> None:
    with pytest.raises(ValueError, match=r"scene\.tunnel\.opacity"):
        SceneSpec.from_dict({"tunnel": {"opacity": 1.5}})
    with pytest.raises(ValueError, match=r"scene\.noise_std"):
        SceneSpec.from_dict({"noise_std": "loud"})
    with pytest.raises(ValueError, match=r"scene\.animal\.color"):
        SceneSpec.from_dict({"animal": {"color": [1, 2]}})
    spec = SceneSpec.from_dict({"animal": {"body_length": 0.2, "color": [10, 20, 30]}, "noise_std": 1})
    assert spec.animal.body_length == 0.2 and spec.animal.color == (10.0, 20.0, 30.0)
    assert spec.noise_std == 1.0 and spec.arena == SceneSpec().arena        # the rest keeps its defaults


def test_presets_load_and_differ_as_in_the_paper() -> None:
    rats, mice = preset("rats"), preset("mice")
    assert SceneSpec.from_dict(rats.to_dict()) == rats                    # round trip
    assert rats.animal.body_length > 1.5 * mice.animal.body_length       # rats are larger
    assert rats.animal.tail_alpha > 2 * mice.animal.tail_alpha           # rat tails are clearly visible
    assert rats.tunnel.enabled and mice.tunnel.enabled

    def contrast(s: SceneSpec) -> float:
        return abs(float(np.mean(s.animal.color)) - float(np.mean(s.arena.floor_color)))

    assert contrast(rats) > 3 * contrast(mice)                            # mice are low contrast


def test_rendered_contrast_follows_the_presets() -> None:
    def local_contrast(name: str, n: int) -> float:
        """Grey-level difference between the animals and a thin ring of floor around them."""
        f = frames(quiet(preset(name)), n, 1)[0]
        gray = f.image.astype(float).mean(axis=2)
        animals = f.masks.any(axis=0)
        ring = cv2.dilate(animals.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~animals
        return abs(gray[animals].mean() - gray[ring].mean())

    rats, mice = local_contrast("rats", 2), local_contrast("mice", 4)
    assert rats > 60 and mice < 35 and rats > 2.5 * mice
