"""Mask losses on logits: Dice, binary cross-entropy, and their weighted sum (the paper's "cross-entropy and
Dice loss", Sudre et al. 2017).

Every function takes ``logits`` and ``targets`` of the same shape ``(N, ...)``: one mask per row, any number
of spatial dimensions; targets are 0/1 (or soft, in [0, 1]). Losses are computed per mask and averaged over the
``N`` masks, so a small animal counts as much as a large one. The exception is :func:`ce_dice_loss`, for
C-class semantic segmentation (the segmentation baselines): ``(N, C, ...)`` logits and ``(N, ...)`` class indices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 |p t| + s) / (|p| + |t| + s)`` per mask, averaged; ``p = sigmoid(logits)``.

    ``smooth`` keeps the loss defined (and 0) for an empty target predicted empty.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return _soft_dice(logits.sigmoid(), targets, smooth)


def _soft_dice(prob: torch.Tensor, targets: torch.Tensor, smooth: float) -> torch.Tensor:
    prob = prob.flatten(1)
    tgt = targets.to(prob.dtype).flatten(1)
    inter = (prob * tgt).sum(1)
    denom = prob.sum(1) + tgt.sum(1)
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy on logits, averaged per mask, then over masks."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return per_pixel.flatten(1).mean(1).mean()


def bce_dice_loss(logits: torch.Tensor, targets: torch.Tensor, bce_weight: float = 1.0, dice_weight: float = 1.0,
                  smooth: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``bce_weight * BCE + dice_weight * Dice``; returns the total and the detached parts ``{"bce", "dice"}``."""
    bce = bce_loss(logits, targets)
    dice = dice_loss(logits, targets, smooth=smooth)
    return bce_weight * bce + dice_weight * dice, {"bce": bce.detach(), "dice": dice.detach()}


def ce_dice_loss(logits: torch.Tensor, targets: torch.Tensor, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 smooth: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Semantic segmentation: ``ce_weight * cross-entropy + dice_weight * Dice`` (the paper's loss).

    ``logits`` (N, C, ...), ``targets`` (N, ...) class indices. Dice is the soft Dice of each foreground class
    (1 .. C-1) on the softmax probabilities, per image and class, averaged (background, class 0, is left out: it
    would dominate); with C = 2 it is :func:`dice_loss` of the logit difference. Returns the total and the
    detached parts ``{"ce", "dice"}``.
    """
    if logits.ndim < 2 or logits.shape[:1] + logits.shape[2:] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} with a class axis")
    targets = targets.long()
    ce = F.cross_entropy(logits, targets)
    classes = logits.shape[1]
    if classes < 2 or logits.shape[0] == 0:
        dice = logits.sum() * 0.0
    else:
        prob = logits.softmax(1)[:, 1:]
        onehot = F.one_hot(targets, classes).movedim(-1, 1)[:, 1:]
        dice = _soft_dice(prob.flatten(0, 1), onehot.flatten(0, 1), smooth)
    return ce_weight * ce + dice_weight * dice, {"ce": ce.detach(), "dice": dice.detach()}


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks per row: ``(N, ...)`` bool -> ``(N,)`` float (1.0 where both are empty)."""
    pred, target = pred.flatten(1).bool(), target.flatten(1).bool()
    inter = (pred & target).sum(1).float()
    union = (pred | target).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
