"""How a checkpoint's state dict differs from a model's: the one message every loader of ours gives."""

from __future__ import annotations

from collections.abc import Mapping

import torch

SHOW = 5  # keys listed per kind in a mismatch message


def format_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    return shown + (f", ... (+{len(keys) - SHOW} more)" if len(keys) > SHOW else "")


def mismatch(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> str | None:
    """None when ``state`` fits ``target`` exactly, else "N missing keys (...); M unexpected keys (...); K shape
    mismatches (name: file (..) vs model (..))"."""
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    mismatched = sorted(k for k in set(state) & set(target) if state[k].shape != target[k].shape)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({format_keys(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({format_keys(unexpected)})")
    if mismatched:
        shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}" for k in mismatched]
        problems.append(f"{len(mismatched)} shape mismatches ({format_keys(shapes)})")
    return "; ".join(problems) or None
