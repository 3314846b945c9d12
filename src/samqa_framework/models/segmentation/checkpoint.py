"""Exported segmentation weights: the net's plain state dict (``torch.save``) + a sidecar ``<file>.json``.

The sidecar (same layout as the SAM exports', ``models.sam.checkpoints.write_export`` / ``read_export_meta``) holds
``format: samqa-segmentation``, ``image_size`` [h, w] and the training run's ``meta``, among which ``model``: the
Hydra config the net was built from. The sidecar is data: the net is built from one of our own model configs
(``conf/model/*.yaml``) with the values the sidecar records (:func:`net_config`), never from classes it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from samqa_framework.models.sam.checkpoints import read_export_meta, sidecar_path, write_export
from samqa_framework.models.state_dict import mismatch
from samqa_framework.utils.errors import ConfigError, DataFormatError, UntrustedFileError
from samqa_framework.utils.hydra import CONFIG_DIR
from samqa_framework.utils.safe_torch import load_torch_file
from samqa_framework.utils.trust import trusted, warn_trusted

FORMAT = "samqa-segmentation"
MODEL_CONFIGS = CONFIG_DIR / "model"  # the nets a sidecar may name: ours only



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
    state = load_torch_file(path, "state dict")  # weights only: a file that needs more is refused (trust_checkpoint)
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


# ---------------------------------------------------------------------------------------------- the net's config


def own_model_config(name: str) -> dict[str, Any]:
    """``conf/model/<name>.yaml`` as plain values (a ``ConfigError`` naming ``net`` lists the known ones)."""
    file = MODEL_CONFIGS / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml"))
        raise ConfigError("net", f"no model config {name!r} (known: {', '.join(known)})")
    config = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    config.pop("defaults", None)  # Hydra's composition list, not an argument
    return config


def _own_config_of(target: object) -> dict[str, Any] | None:
    for file in sorted(MODEL_CONFIGS.glob("*.yaml")):
        config = own_model_config(file.stem)
        if config.get("_target_") == target:
            return config
    return None


def _plain(value: object) -> bool:
    """A value Hydra passes on as it is: no config node, no interpolation."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, str):
        return "${" not in value
    return value is None or isinstance(value, bool | int | float)


class _NotPlainData(Exception):
    """What in a sidecar's model config is more than plain data (the message says where)."""


def _with_recorded(ours: Mapping[str, Any], recorded: Mapping[str, Any], key: str) -> dict[str, Any]:
    out = dict(ours)
    for name, value in recorded.items():
        where = f"{key}.{name}"
        if str(name).startswith("_"):  # _target_, _args_, _partial_...: what gets called comes from our configs only
            if ours.get(name) != value:
                raise _NotPlainData(f"{where} is {value!r} where our model config has {ours.get(name)!r}: nets are "
                                    "built from conf/model/ only")
        elif isinstance(value, Mapping) and isinstance(ours.get(name), Mapping):
            out[name] = _with_recorded(ours[name], value, where)
        elif _plain(value):
            out[name] = value
        else:
            raise _NotPlainData(f"{where} holds a config node or an interpolation, not a plain value")
    return out


def net_config(checkpoint: str | os.PathLike[str], model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config to build the net of an export from: ``model`` (one of our model configs; default: the
    ``conf/model/*.yaml`` whose ``_target_`` the sidecar records), with the plain values the sidecar records
    (``meta.model``: e.g. the encoder or the DINOv2 folder it was trained with).

    The sidecar is data: a class it names must be our config's own (``_target_`` and Hydra's other ``_`` keys), and
    its values must be plain; anything else is an ``UntrustedFileError`` naming the sidecar and ``trust_checkpoint``.
    Trusted, such a sidecar's config is used as it is (``model`` if given), with a warning.
    """
    path = Path(checkpoint)
    side = sidecar_path(path)
    recorded = (export_info(path).get("meta") or {}).get("model") or {}
    if not isinstance(recorded, Mapping):
        raise DataFormatError(side, f"meta.model must be a model config (a mapping), got {type(recorded).__name__}")
    if model is None and "_target_" not in recorded:
        raise ConfigError("checkpoint", f"{path} records no model config (_target_): pass the net's model config")
    try:
        ours = dict(model) if model is not None else _own_config_of(recorded["_target_"])
        if ours is None:
            raise _NotPlainData(f"meta.model._target_ {recorded['_target_']!r} is none of our model configs "
                                "(conf/model/)")
        return _with_recorded(ours, recorded, "meta.model")
    except _NotPlainData as exc:
        if not trusted():
            raise UntrustedFileError(side, str(exc)) from None
        warn_trusted(side, str(exc))
        return dict(model) if model is not None else dict(recorded)
