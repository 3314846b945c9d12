"""Load SAM-family checkpoints into a ``build_sam`` model, and export our own.

Formats (``fmt``):

- ``sam``: segment-anything's released state dicts (``sam_vit_b_01ec64.pth``...): a flat dict of tensors with
  keys ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``.
- ``mobile_sam``: MobileSAM's ``mobile_sam.pt``: the same top-level prefixes, but the image encoder uses
  MobileSAM's TinyViT names (``patch_embed.seq.0.c``, ``layers.{i}.blocks``, ``layers.{i}.downsample``,
  classifier ``norm_head``/``head``); they are renamed to timm's TinyViT as held by ``TimmEncoder``
  (``trunk.patch_embed.conv1.conv``, ``trunk.stages.{i}.blocks``, ``trunk.stages.{i+1}.downsample``) and the
  unused classifier is dropped.
- ``samqa``: written by :func:`export_sam_state_dict`: our model's own flat state dict (so a ViT export is an
  ordinary SAM file) with a sidecar ``<file>.json`` describing the encoder.
- ``auto``: picked from the keys (``image_encoder.trunk.*`` -> samqa, ``image_encoder.layers.*`` -> mobile_sam,
  otherwise sam).

Files are read weights only (``utils.safe_torch``): one that needs more than tensors and containers is refused unless
``trust_checkpoint=true``. A Lightning checkpoint (``{"state_dict": {"student.image_encoder...": ...}}``) or a
``{"model": {...}}`` wrapper is unwrapped first; a ``student.``/``model.``/``sam.`` (or any single) prefix in front of
the SAM parts is removed.

When the model's input size differs from the checkpoint's (released SAMs are 1024 px), the ViT's absolute
``pos_embed`` grid is resized bicubically and the relative-position tables ``rel_pos_h``/``rel_pos_w`` of the
global-attention blocks are resized linearly along their length, which is exactly what segment-anything's
``get_rel_pos`` would do on the fly; windowed blocks and TinyViT's attention biases depend only on the window
size and are kept as they are.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam

from samqa_framework.models.state_dict import SHOW, mismatch
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.io import atomic_open, atomic_write_text
from samqa_framework.utils.safe_torch import load_torch_file

FORMATS = ("auto", "sam", "mobile_sam", "samqa")
SAM_PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")
# Which prefix (before ``image_encoder.`` etc.) to use when a checkpoint holds several models, best first.
_PREFERRED_PREFIXES = ("", "student.", "model.student.", "model.", "sam.", "model.sam.")
_PART_RE = re.compile(r"^(?P<prefix>(?:[^.]+\.)*?)(?:image_encoder|prompt_encoder|mask_decoder)\.")
_REL_POS_RE = re.compile(r"^image_encoder\.blocks\.\d+\.attn\.rel_pos_[hw]$")


# ---------------------------------------------------------------------------------------------- reading


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`write_export` writes the metadata of ``path``: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_export(module: torch.nn.Module, path: str | os.PathLike[str], info: Mapping[str, Any]) -> Path:
    """``module``'s state dict (on the CPU) at ``path`` and ``info`` in its sidecar (JSON; other values stored as
    strings), both atomically; :func:`read_export_meta` reads the sidecar back. Returns ``path``."""
    path = Path(path)
    state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    with atomic_open(path, "wb") as fh:
        torch.save(state, fh)
    atomic_write_text(sidecar_path(path), json.dumps(dict(info), indent=2, default=str) + "\n")
    return path


def read_export_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar metadata of an exported checkpoint (``format``, ``encoder``, ``meta``), or None if absent."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(side, f"cannot read checkpoint metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise DataFormatError(side, "checkpoint metadata must be a JSON object")
    return meta


def _strip_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Remove a ``student.``/``model.``... prefix in front of the SAM parts (flat dicts are left untouched)."""
    prefixes: dict[str, int] = {}
    for key in state:
        match = _PART_RE.match(key)
        if match:
            prefixes[match["prefix"]] = prefixes.get(match["prefix"], 0) + 1
    if not prefixes or "" in prefixes:
        return state
    chosen = next((p for p in _PREFERRED_PREFIXES if p in prefixes), None)
    if chosen is None:
        if len(prefixes) > 1:
            raise DataFormatError(path, f"holds several SAM models (prefixes {sorted(prefixes)}); cannot tell "
                                        "which to load")
        chosen = next(iter(prefixes))
    return {key[len(chosen):]: value for key, value in state.items() if key.startswith(chosen)}


def read_state_dict(checkpoint: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` dict stored in ``checkpoint``, unwrapped from Lightning/``model`` containers."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError("checkpoint", f"checkpoint file not found: {path}")
    obj = load_torch_file(path)  # weights only: a file that needs more is refused (trust_checkpoint)
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise DataFormatError(path, f"expected a state dict (name -> tensor), found {type(obj).__name__}"
                                    + (" (empty)" if isinstance(obj, Mapping) else ""))
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataFormatError(path, f"{len(bad)} entries are not named tensors, e.g. {bad[:SHOW]}")
    return _strip_prefix(dict(obj), path)


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """``samqa`` (TimmEncoder keys), ``mobile_sam`` (MobileSAM TinyViT keys) or ``sam`` (anything else)."""
    if any(k.startswith("image_encoder.trunk.") for k in state):
        return "samqa"
    if any(k.startswith(("image_encoder.layers.", "image_encoder.patch_embed.seq.")) for k in state):
        return "mobile_sam"
    return "sam"


# ------------------------------------------------------------------------------------------- remapping


def _mobile_sam_key(key: str) -> str | None:
    """MobileSAM TinyViT name -> our TimmEncoder name; None for MobileSAM's unused classifier."""
    if not key.startswith("image_encoder."):
        return key
    rest = key[len("image_encoder."):]
    parts = rest.split(".")
    if parts[0] in ("norm_head", "head"):
        return None
    if parts[0] == "patch_embed" and len(parts) > 2 and parts[1] == "seq" and parts[2] in ("0", "2"):
        parts = ["trunk", "patch_embed", "conv1" if parts[2] == "0" else "conv2", *parts[3:]]
    elif parts[0] == "layers" and len(parts) > 3 and parts[1].isdigit():
        stage = int(parts[1])
        if parts[2] == "downsample":  # MobileSAM merges at the end of layer i, timm at the start of stage i+1
            stage += 1
        parts = ["trunk", "stages", str(stage), *parts[2:]]
    else:
        return key  # neck.* is named alike; anything else shows up as unexpected
    # MobileSAM's Conv2d_BN names its convolution ``c``; timm's ConvNorm names it ``conv``.
    parts = ["conv" if p == "c" else p for p in parts]
    return "image_encoder." + ".".join(parts)


def remap_mobile_sam(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        new = _mobile_sam_key(key)
        if new is not None:
            out[new] = value
    return out


def resize_pos_embed(pos_embed: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(1, H, W, C) absolute position grid -> (1, h, w, C), bicubic (align_corners=False)."""
    x = pos_embed.float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    return x.permute(0, 2, 3, 1).to(pos_embed.dtype).contiguous()


def resize_rel_pos(rel_pos: torch.Tensor, length: int) -> torch.Tensor:
    """(L, C) relative-position table -> (length, C), linear, as segment-anything's ``get_rel_pos``."""
    x = rel_pos.float().reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1)
    x = F.interpolate(x, size=length, mode="linear")
    return x.reshape(-1, length).permute(1, 0).to(rel_pos.dtype).contiguous()


def adapt_to_model(state: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resize the input-size-dependent ViT tensors of ``state`` to the shapes in ``target``."""
    out = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is None:
            if key.endswith(".attention_bias_idxs"):
                del out[key]  # a derived index buffer, non-persistent in current MobileSAM and timm
            continue
        if want.shape == value.shape:
            continue
        if key == "image_encoder.pos_embed" and value.ndim == want.ndim == 4 and value.shape[3] == want.shape[3]:
            out[key] = resize_pos_embed(value, (want.shape[1], want.shape[2]))
        elif _REL_POS_RE.match(key) and value.ndim == want.ndim == 2 and value.shape[1] == want.shape[1]:
            out[key] = resize_rel_pos(value, want.shape[0])
    for key, value in target.items():
        # BatchNorm's step counter (unused in eval and by momentum-based training): files saved without it,
        # which torch's own loader accepts too, keep the model's.
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = value.clone()
    return out


# --------------------------------------------------------------------------------------------- loading


def encoder_spec(encoder: torch.nn.Module) -> dict[str, Any]:
    """What an exported file records about its encoder (enough to rebuild it from the encoder configs)."""
    spec: dict[str, Any] = {"class": type(encoder).__name__, "img_size": int(getattr(encoder, "img_size", 0))}
    for attr in ("variant", "model_name"):
        if hasattr(encoder, attr):
            spec[attr] = getattr(encoder, attr)
    return spec


def _check_export_meta(sam: Sam, path: Path) -> None:
    meta = read_export_meta(path)
    if not meta or meta.get("format") != "samqa" or not isinstance(meta.get("encoder"), dict):
        return
    have, want = encoder_spec(sam.image_encoder), meta["encoder"]
    for field in ("class", "variant", "model_name"):
        if field in want and want[field] != have.get(field):
            raise ConfigError("checkpoint", f"{path} was exported from a {want.get('class')} with "
                                            f"{field}={want[field]!r}, but the model's encoder has "
                                            f"{field}={have.get(field)!r}; choose the matching encoder")


def check_state_dict(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], path: Path,
                     fmt: str) -> None:
    """Raise ConfigError naming missing/unexpected keys and shape mismatches between file and model."""
    problems = mismatch(state, target)
    if problems:
        raise ConfigError("checkpoint", f"{path} (read as format {fmt!r}) does not fit the model: {problems}. "
                                        "Check the model's encoder and checkpoint_format.")


def load_checkpoint(sam: Sam, checkpoint: str | os.PathLike[str], checkpoint_format: str = "auto") -> None:
    """Load ``checkpoint`` into ``sam`` in place (strict: every model tensor must come from the file).

    Raises ConfigError naming ``checkpoint`` for a missing file or one that does not fit the model (the message
    names missing/unexpected keys and shape mismatches) and ``checkpoint_format`` for an unknown format, and
    DataFormatError for an unreadable file.
    """
    fmt = checkpoint_format
    if fmt not in FORMATS:
        raise ConfigError("checkpoint_format", f"unknown checkpoint format {fmt!r}; choose one of {FORMATS}")
    path = Path(checkpoint)
    state = read_state_dict(path)
    if fmt == "auto":
        fmt = detect_format(state)
    if fmt == "mobile_sam":
        state = remap_mobile_sam(state)
    _check_export_meta(sam, path)  # our exports (any format name) say which encoder wrote them
    target = sam.state_dict()
    state = adapt_to_model(state, target)
    check_state_dict(state, target, path, fmt)
    with torch.no_grad():
        sam.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- export


def export_sam_state_dict(sam: Sam, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Path:
    """Write ``sam``'s weights as a flat SAM-style state dict at ``path`` (atomically) and return the path.

    The file holds only ``image_encoder.*``, ``prompt_encoder.*`` and ``mask_decoder.*`` tensors (a ViT model
    gives a file segment-anything's own builders load). The encoder description and ``meta`` (JSON-serialisable;
    other values are stored as strings) go to the sidecar ``<path>.json`` (:func:`read_export_meta`).
    :func:`load_checkpoint` with ``fmt="auto"`` loads the file back bit-exactly.
    """
    info = {"format": "samqa", "version": 1, "encoder": encoder_spec(sam.image_encoder), "meta": meta or {}}
    return write_export(sam, path, info)
