"""BoxInst's box terms (models/box_supervision.py): colour space, box masks, projection and pairwise terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samqa_framework.models.box_supervision import (
    box_fit_iou,
    box_loss,
    box_loss_settings,
    check_supervision,
    color_similarity,
    mask_boxes,
    pairwise_loss,
    projection_loss,
    rasterize_boxes,
    rgb_to_lab,
)
from samqa_framework.models.lit.finetune import box_masks
from samqa_framework.utils.errors import ConfigError


def disc_scene(size: int = 32, radius: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, 3, S, S) uint8 image of a light disc on a dark background, and the disc's (S, S) mask."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = (size - 1) / 2
    disc = ((yy - centre) ** 2 + (xx - centre) ** 2) < radius ** 2
    image = torch.tensor([40, 60, 40], dtype=torch.uint8).view(1, 3, 1, 1).repeat(1, 1, size, size)
    image[0, :, disc] = torch.tensor([220, 180, 120], dtype=torch.uint8)[:, None]
    return image, disc


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_lab_conversion_matches_skimage() -> None:
    color = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(0).integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    theirs = np.stack([color.rgb2lab(im) for im in rgb])
    assert np.abs(ours - theirs).max() < 1e-3
    # float input in [0, 1] is the same colour
    assert torch.allclose(rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255),
                          torch.from_numpy(ours).permute(0, 3, 1, 2), atol=1e-3)


def test_box_masks_on_a_grid() -> None:
    boxes = torch.tensor([[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 8.0, 6.0]])
    assert torch.equal(rasterize_boxes(boxes, 6, 8), box_masks(boxes, 6, 8))  # pixel grid: the validation's
    # a stride-4 grid samples the cell centres (2, 6, 10, ...): x in [4, 12) and y in [5, 10) hold cells 1-2 and 1
    coarse = rasterize_boxes(torch.tensor([[4.0, 5.0, 12.0, 10.0]]), 4, 4, stride=4)
    assert coarse[0].nonzero().tolist() == [[1, 1], [1, 2]]
    # a box smaller than a cell keeps the cell holding its centre
    assert rasterize_boxes(torch.tensor([[5.0, 9.0, 6.0, 10.0]]), 4, 4, stride=4)[0].nonzero().tolist() == [[2, 1]]


def test_projection_is_zero_for_the_box_and_high_for_nothing() -> None:
    box = rasterize_boxes(torch.tensor([[4.0, 6.0, 20.0, 14.0]]), 24, 24)
    assert projection_loss(box.float(), box) < 1e-4
    assert projection_loss(torch.zeros(1, 24, 24), box) > 1.99  # 1 per axis
    # only the tight box counts: a cross touching the four sides projects like the box
    cross = torch.zeros(1, 24, 24)
    cross[0, 6:14, 12] = 1
    cross[0, 10, 4:20] = 1
    assert projection_loss(cross, box) < 1e-4
    half = box.float().clone()
    half[0, :, 12:] = 0  # covers half the box's width
    assert 0.2 < projection_loss(half, box) < 1.0
    spill = box.float().clone()
    spill[0, 0:2, 0:2] = 1  # foreground outside the box costs on both axes
    assert projection_loss(spill, box) > 0.1
    with pytest.raises(ValueError, match="shape"):
        projection_loss(box.float()[:, :4], box)


def test_colour_similarity_of_neighbours() -> None:
    image, disc = disc_scene(16, 5)
    sim = color_similarity(image, dilation=2)
    assert sim.shape == (1, 8, 16, 16)
    assert torch.allclose(sim[0, :, 8, 8], torch.ones(8))  # inside the uniform disc: identical colours
    assert sim[0, :, 0, 0].tolist().count(0.0) == 5  # a corner: 5 of its 8 neighbours lie beyond the image
    # across the disc's edge the colours differ: far below BoxInst's 0.3
    edge = torch.nonzero(disc[8])[0].item()  # the disc's first column on row 8
    assert sim[0, 3, 8, edge].item() < 0.01  # neighbour (0, -2): outside the disc
    valid = torch.ones(1, 16, 16, dtype=torch.bool)
    valid[:, :, 12:] = False  # padding: never a neighbour
    assert (color_similarity(image, valid)[0, 4, :, 10:] == 0).all()  # neighbour (0, +2) falls in the padding


def test_pairwise_prefers_a_cut_along_the_colour_edge() -> None:
    size = 24
    image = torch.full((1, 3, size, size), 50, dtype=torch.uint8)
    image[:, :, :, size // 2:] = 200  # left dark, right light
    sim = color_similarity(image)
    box = torch.ones(1, size, size, dtype=torch.bool)
    along = torch.full((1, size, size), -4.0)
    along[:, :, : size // 2] = 4.0  # foreground = the dark half: the cut follows the edge
    across = torch.full((1, size, size), -4.0)
    across[:, : size // 2] = 4.0  # foreground = the top half: cuts through both uniform halves
    low, high = pairwise_loss(along, sim, box), pairwise_loss(across, sim, box)
    assert low < 0.05 and high > 3 * low and high > 0.2
    # pairs outside the box do not count: the same cut, boxed away from it, costs nothing
    top = torch.zeros(1, size, size, dtype=torch.bool)
    top[:, :6] = True
    assert pairwise_loss(across, sim, top) < 0.05
    # finite for any logits (log space)
    assert torch.isfinite(pairwise_loss(torch.full((1, size, size), 1e4) * (2 * (across > 0) - 1), sim, box))


def test_box_terms_carve_the_box_toward_the_object() -> None:
    """From the box as the prediction, the pairwise term moves the mask to the object's colour edge; the projection
    term alone is already satisfied by the box and leaves it there."""
    image, disc = disc_scene()
    box = rasterize_boxes(mask_boxes(disc[None]), *disc.shape)
    start = iou(box[0], disc)
    assert 0.75 < start < 0.82  # a disc fills pi/4 of its box
    sim = color_similarity(image)
    result = {}
    for pairwise_weight in (0.0, 1.0):
        logits = ((box.float() * 2 - 1) * 3).requires_grad_(True)
        opt = torch.optim.Adam([logits], lr=0.05)
        for _ in range(300):
            loss, parts = box_loss(logits, box, sim, 1.0, pairwise_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert torch.isfinite(loss) and set(parts) == {"projection", "pairwise"}
        result[pairwise_weight] = iou(logits.detach()[0] > 0, disc)
    assert result[0.0] == pytest.approx(start)
    assert result[1.0] > start + 0.08


def test_box_fit_iou_and_tight_boxes() -> None:
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 1, 1] = True
    assert mask_boxes(masks).tolist() == [[3, 2, 9, 5], [1, 1, 2, 2], [0, 0, 0, 0]]
    boxes = torch.tensor([[3.0, 2, 9, 5], [1, 1, 3, 3], [0, 0, 4, 4]])
    assert box_fit_iou(masks, boxes).tolist() == pytest.approx([1.0, 0.25, 0.0])


def test_settings_are_checked() -> None:
    assert check_supervision("auto") == "auto"
    with pytest.raises(ConfigError, match=r"'supervision'.*auto, mask, box"):
        check_supervision("boxes")
    settings = box_loss_settings({"pairwise_weight": 0.5}, extra={"resolution": "low_res"})
    assert settings["pairwise_weight"] == 0.5 and settings["dilation"] == 2 and settings["resolution"] == "low_res"
    with pytest.raises(ConfigError, match=r"'box\.pairwise'"):
        box_loss_settings({"pairwise": 1.0})
    with pytest.raises(ConfigError, match=r"'box\.dilation'"):
        box_loss_settings({"dilation": 0})
    with pytest.raises(ConfigError, match=r"'box\.theta'"):
        box_loss_settings({"theta": 0.0})
