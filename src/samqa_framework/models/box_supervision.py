"""Mask losses from boxes alone: BoxInst's projection and pairwise colour-affinity terms.

Tian, Shen, Wang and Chen, *BoxInst: High-Performance Instance Segmentation with Box Annotations*, CVPR 2021
(arXiv:2012.02310). Where a label has a box but no mask, the predicted mask ``m`` of that animal is trained with

- the **projection term**: the max-projections of ``m`` onto the x and the y axis must equal those of the box
  (a mask's projections are its tight box's): ``Dice(max_y m, max_y b) + Dice(max_x m, max_x b)``, with BoxInst's
  Dice ``1 - 2 sum(xt) / (sum(x^2) + sum(t^2))``; range [0, 2];
- the **pairwise term**: neighbouring pixels of similar colour probably share a label. For each pixel ``i`` inside
  the box and each of its 8 neighbours ``j`` at ``dilation`` pixels, the colour similarity in CIE LAB,
  ``exp(-||c_i - c_j|| / theta)``, decides whether the pair counts (``>= threshold``); a counted pair costs
  ``-log P(same label)``, ``P = p_i p_j + (1 - p_i)(1 - p_j)``, averaged over all counted pairs.

BoxInst's defaults: ``dilation`` 2, ``theta`` 2, ``threshold`` 0.3, both terms weighted 1, the pairwise term ramped
up over its first iterations (a random mask satisfies it trivially). Its reference code is AdelaiDet's
``condinst/dynamic_mask_head.py``, a detectron2 project that is not pip-installable here (detectron2 is built from
source against a given CUDA/torch; mmdetection's port needs mmcv's compiled ops likewise), hence this vectorised
re-implementation of the two terms alone (no CondInst), checked against the paper's definitions in the tests.

Shapes: one mask per row, ``(N, H, W)``; ``box_masks`` (N, H, W) bool, the pixels each box covers (see
:func:`rasterize_boxes`); images ``(N, 3, H, W)``. Everything works on the rows given, so callers select the box-only
instances (and, for a semantic foreground, the region of each box) before calling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from samqa_framework.utils.errors import ConfigError, check_number

# how a training module uses its labels: auto = each animal's mask where it has one, its box where not
SUPERVISION_MODES = ("auto", "mask", "box")
# the box terms' settings (BoxInst's values; the warm-up is in steps of our much shorter runs)
BOX_LOSS_DEFAULTS: dict[str, float | int] = {"projection_weight": 1.0, "pairwise_weight": 1.0,
                                             "pairwise_warmup_steps": 100, "dilation": 2, "theta": 2.0,
                                             "color_threshold": 0.3}

# sRGB (D65) -> CIE XYZ and the D65 white point: the constants of skimage.color.rgb2lab, which BoxInst uses
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB (uint8 0..255, or float 0..1) -> CIE LAB float32 (L 0..100), as ``skimage.color.rgb2lab``."""
    x = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    linear = torch.where(x > 0.04045, ((x + 0.055) / 1.055).pow(2.4), x / 12.92)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=linear.dtype, device=linear.device)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear)
    xyz = xyz / torch.tensor(_WHITE_D65, dtype=xyz.dtype, device=xyz.device).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12).pow(1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    lightness = 116.0 * f[:, 1] - 16.0
    return torch.stack([lightness, 500.0 * (f[:, 0] - f[:, 1]), 200.0 * (f[:, 1] - f[:, 2])], dim=1)


def _offsets(dilation: int) -> list[tuple[int, int]]:
    """The 8 neighbours (dy, dx) of a 3x3 window dilated by ``dilation``, the centre left out."""
    return [(dy * dilation, dx * dilation) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def neighbours(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 8, H, W): each pixel's 8 neighbours at ``dilation``; 0 beyond the image's edge."""
    d = int(dilation)
    h, w = x.shape[-2:]
    padded = F.pad(x, (d, d, d, d))
    return torch.stack([padded[..., d + dy:d + dy + h, d + dx:d + dx + w] for dy, dx in _offsets(d)], dim=2)


def color_similarity(images: torch.Tensor, valid: torch.Tensor | None = None, dilation: int = 2,
                     theta: float = 2.0) -> torch.Tensor:
    """``exp(-||lab_i - lab_j|| / theta)`` of every pixel ``i`` and its 8 neighbours ``j`` at ``dilation``.

    ``images`` (N, 3, H, W) RGB (uint8 or float 0..1); ``valid`` (N, H, W) bool, the pixels that are image (not
    padding); a neighbour outside the image or the valid area gets similarity 0 (never counted). Returns
    (N, 8, H, W).
    """
    lab = rgb_to_lab(images)
    diff = lab[:, :, None] - neighbours(lab, dilation)
    similarity = torch.exp(-diff.norm(dim=1) / float(theta))
    inside = torch.ones_like(lab[:, :1]) if valid is None else valid[:, None].to(lab.dtype)
    return similarity * neighbours(inside, dilation)[:, 0]


def rasterize_boxes(boxes: torch.Tensor, height: int, width: int, stride: float = 1.0) -> torch.Tensor:
    """(N, 4) x1, y1, x2, y2 boxes (pixel edges, input pixels) -> (N, H, W) bool on a grid of cells ``stride``
    pixels wide: a cell is inside where its centre is (BoxInst samples its box masks at the cell centres too).

    A box narrower than a cell still covers the cell holding its centre, so no box is lost at a coarse grid.
    """
    boxes = boxes.to(torch.float32)
    cx = (torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    cy = (torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5) * stride
    x1, y1, x2, y2 = (boxes[:, i, None] for i in range(4))
    # the cell holding the box's centre, clamped into the grid
    mx = ((x1 + x2) / 2 / stride).floor().clamp(0, width - 1)
    my = ((y1 + y2) / 2 / stride).floor().clamp(0, height - 1)
    cols = ((cx >= x1) & (cx < x2)) | (torch.arange(width, device=boxes.device) == mx)
    rows = ((cy >= y1) & (cy < y2)) | (torch.arange(height, device=boxes.device) == my)
    return rows[:, :, None] & cols[:, None, :]


def _boxinst_dice(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per row: ``1 - 2 sum(x t) / (sum(x^2) + sum(t^2) + eps)`` (BoxInst's Dice, squared denominators)."""
    x, target = x.flatten(1), target.flatten(1)
    return 1.0 - 2.0 * (x * target).sum(1) / ((x * x).sum(1) + (target * target).sum(1) + eps)


def projection_loss(prob: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
    """BoxInst's projection term: mean over rows of the Dice of the max-projections onto x and onto y.

    ``prob`` (N, H, W) mask probabilities (sigmoid of the logits; for a semantic foreground, the probability
    inside the region the box's animal may occupy), ``box_masks`` (N, H, W). 0 for a mask whose tight box is the
    box, up to 2 for an empty one.
    """
    if prob.shape != box_masks.shape:
        raise ValueError(f"prob {tuple(prob.shape)} and box_masks {tuple(box_masks.shape)} differ in shape")
    if prob.shape[0] == 0:
        return prob.sum() * 0.0
    target = box_masks.to(prob.dtype)
    along_x = _boxinst_dice(prob.amax(dim=1), target.amax(dim=1))  # (N, W): the projection onto the x axis
    along_y = _boxinst_dice(prob.amax(dim=2), target.amax(dim=2))  # (N, H): onto the y axis
    return (along_x + along_y).mean()


def pairwise_loss(logits: torch.Tensor, similarity: torch.Tensor, box_masks: torch.Tensor, threshold: float = 0.3,
                  dilation: int = 2) -> torch.Tensor:
    """BoxInst's pairwise term: ``-log(p_i p_j + (1 - p_i)(1 - p_j))`` over the neighbour pairs whose colour
    similarity is at least ``threshold`` and whose centre pixel ``i`` lies in the box, averaged over those pairs.

    ``logits`` (N, H, W); ``similarity`` (N, 8, H, W) from :func:`color_similarity` with the same ``dilation``
    (rows of one image repeated for each of its boxes); ``box_masks`` (N, H, W). Computed in log space (a
    log-sum-exp of the two agreements), finite for any logits.
    """
    if logits.shape != box_masks.shape or similarity.shape != (logits.shape[0], 8, *logits.shape[1:]):
        raise ValueError(f"logits {tuple(logits.shape)}, similarity {tuple(similarity.shape)} and box_masks "
                         f"{tuple(box_masks.shape)} do not match")
    log_fg, log_bg = F.logsigmoid(logits)[:, None], F.logsigmoid(-logits)[:, None]
    both_fg = log_fg + neighbours(log_fg, dilation)[:, 0]
    both_bg = log_bg + neighbours(log_bg, dilation)[:, 0]
    nll = -torch.logaddexp(both_fg, both_bg)  # (N, 8, H, W)
    weights = (similarity >= threshold).to(logits.dtype) * box_masks[:, None].to(logits.dtype)
    return (nll * weights).sum() / weights.sum().clamp_min(1.0)


def box_loss(logits: torch.Tensor, box_masks: torch.Tensor, similarity: torch.Tensor,
             projection_weight: float = 1.0, pairwise_weight: float = 1.0, threshold: float = 0.3,
             dilation: int = 2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``projection_weight * projection + pairwise_weight * pairwise`` for N box-only masks (``logits`` (N, H, W));
    returns the total and the detached parts ``{"projection", "pairwise"}``."""
    projection = projection_loss(logits.sigmoid(), box_masks)
    pairwise = (pairwise_loss(logits, similarity, box_masks, threshold, dilation) if pairwise_weight
                else logits.sum() * 0.0)
    total = projection_weight * projection + pairwise_weight * pairwise
    return total, {"projection": projection.detach(), "pairwise": pairwise.detach()}


def check_supervision(value: Any) -> str:
    """``supervision`` checked: one of :data:`SUPERVISION_MODES`."""
    if value not in SUPERVISION_MODES:
        raise ConfigError("supervision", f"must be one of {', '.join(SUPERVISION_MODES)}, got {value!r}")
    return str(value)


def box_loss_settings(cfg: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The box terms' settings (``loss.box``): :data:`BOX_LOSS_DEFAULTS` (+ a module's ``extra`` keys) overridden by
    ``cfg``, each checked (an unknown key or a bad value is a ConfigError naming ``box.<key>``)."""
    out: dict[str, Any] = {**BOX_LOSS_DEFAULTS, **(extra or {})}
    for key, value in dict(cfg or {}).items():
        if key not in out:
            raise ConfigError(f"box.{key}", f"unknown; the keys are {', '.join(out)}")
        out[key] = value
    for key in ("projection_weight", "pairwise_weight", "theta", "color_threshold"):
        out[key] = check_number(f"box.{key}", out[key], low=0.0)
    for key in ("pairwise_warmup_steps", "dilation"):
        out[key] = check_number(f"box.{key}", out[key], low=0 if key.startswith("pairwise") else 1, integer=True)
    if not out["theta"] > 0:
        raise ConfigError("box.theta", f"must be > 0, got {out['theta']}")
    return out


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) float tight boxes x1, y1, x2, y2 (pixel edges); all 0 for an empty mask."""
    masks = masks.bool()
    h, w = masks.shape[1:]
    cols, rows = masks.any(dim=1), masks.any(dim=2)  # (N, W), (N, H)
    xs = torch.arange(w, device=masks.device, dtype=torch.float32)
    ys = torch.arange(h, device=masks.device, dtype=torch.float32)
    big = float(max(h, w) + 1)
    x1, x2 = torch.where(cols, xs, big).amin(1), torch.where(cols, xs + 1, -1.0).amax(1)
    y1, y2 = torch.where(rows, ys, big).amin(1), torch.where(rows, ys + 1, -1.0).amax(1)
    out = torch.stack([x1, y1, x2, y2], dim=1)
    return torch.where(cols.any(1, keepdim=True), out, torch.zeros_like(out))


def box_fit_iou(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N,) IoU of each mask's tight box with its labelled box (``boxes`` (N, 4) x1, y1, x2, y2): what box labels
    can measure of a predicted mask (0 for an empty mask)."""
    a, b = mask_boxes(masks), boxes.to(torch.float32).to(masks.device)
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp_min(0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp_min(0)
    inter = iw * ih
    area = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).clamp_min(0).prod(1)
    return inter / (area - inter).clamp_min(1e-9)
