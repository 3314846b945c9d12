"""Exported segmentation weights: the net's plain state dict (``torch.save``) + a sidecar ``<file>.json``.

The sidecar (same layout as the SAM exports', ``models.sam.checkpoints.write_export`` / ``read_export_meta``) holds
``format: samqa-segmentation``, ``image_size`` [h, w] and the training run's ``meta``, among which ``model``: the
Hydra config the net was built from, so :meth:`SegmentationPredictor.load` can rebuild it from the file alone.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from samqa_framework.models.sam.checkpoints import read_export_meta, write_export
from samqa_framework.models.state_dict import mismatch
from samqa_framework.utils.errors import ConfigError, DataFormatError

FORMAT = "samqa-segmentation"



def export_segmentation(net: nn.Module, path: str | os.PathLike[str], image_size: tuple[int, int],
                        meta: dict[str, Any] | None = None) -> Path:
    """Write ``net``'s state dict to ``path`` and its description to ``<path>.json`` (both atomically)."""
    info = {"format": FORMAT, "version": 1, "net": type(net).__name__, "image_size": list(image_size),
            "meta": meta or {}}
    return write_export(net, path, info)


def export_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar of an export, or ``{}`` when it has none (a bare state dict)."""
    return read_export_meta(path) or {}


def checkpoint_file(checkpoint: str | os.PathLike[str] | None) -> Path:
    """The exported weights file; unset or missing is a ``ConfigError`` naming ``checkpoint``."""
    if checkpoint is None or str(checkpoint).strip() == "":
        raise ConfigError("checkpoint", "not set: the weights exported by `samqa-train stage=segmentation` "
                                        "(export_path)")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ConfigError("checkpoint", f"segmentation weights not found: {path}")
    return path


def load_segmentation_state(net: nn.Module, checkpoint: str | os.PathLike[str] | None) -> nn.Module:
    """Load an exported state dict into ``net`` (strictly); see :func:`checkpoint_file` for a missing file.

    A Lightning checkpoint of the segmentation stage (``{"state_dict": {"net.…": …}}``) is accepted too.
    """
    path = checkpoint_file(checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable torch state dict ({exc.__class__.__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # Lightning checkpoint
        state = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(path, "expected a state dict (names -> tensors)")
    own = net.state_dict()
    problems = mismatch(state, own)
    if problems:
        raise DataFormatError(path, f"does not match {type(net).__name__}: {problems} (was it trained with another "
                              "model config?)")
    net.load_state_dict(state)
    return net
