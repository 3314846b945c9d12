"""Build a SAM 2 model (image or video predictor) from one of sam2's configs and load an official checkpoint.

Official SAM 2 / 2.1 files (``sam2.1_hiera_tiny.pt``...) hold ``{"model": state_dict}``; a bare state dict is
accepted too. The load is strict: every model tensor must come from the file, with the model's shape, and the
file may hold nothing else; otherwise the error names the missing/unexpected keys and the file. No weights are
ever downloaded: ``checkpoint`` must be a local file (``allow_random=True`` keeps the random initialisation, for
tests and benchmarks only).

``image_size`` (a multiple of 32, default 1024 as the released models) only changes the input resolution: no
SAM 2 weight depends on it, so the released checkpoints load at any size.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from hydra.errors import MissingConfigException
from sam2.build_sam import build_sam2, build_sam2_video_predictor
from sam2.modeling.sam2_base import SAM2Base

from samqa_framework.models.sam2.hydra_scope import sam2_hydra
from samqa_framework.models.state_dict import mismatch
from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.safe_torch import load_torch_file

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZE_MULTIPLE = 32  # Hiera's patch embedding (4) and three 2x poolings: feature maps at 1/4 ... 1/32


def available_configs() -> list[str]:
    """The model configs shipped in the sam2 package, as ``build_sam2_model(config=...)`` takes them."""
    root = resources.files("sam2")
    found = []
    for group in ("configs/sam2", "configs/sam2.1"):
        folder = root.joinpath(group)
        if folder.is_dir():
            found += sorted(f"{group}/{p.name}" for p in folder.iterdir() if p.name.endswith(".yaml"))
    return found


def hole_filling_available(device: str | torch.device) -> bool:
    """sam2 fills small mask holes with its compiled CUDA kernel (``sam2._C``), so only on a GPU with it built."""
    return torch.device(device).type == "cuda" and importlib.util.find_spec("sam2._C") is not None


_logged_once: set[str] = set()  # notes already logged by this process


def _disable_hole_filling(model: SAM2Base, device: str) -> None:
    # Without the kernel sam2 warns on EVERY frame and then skips the step anyway ("it's OK to ignore").
    # Switching it off gives the same masks without the warnings; say so once per process.
    if getattr(model, "fill_hole_area", 0) > 0 and not hole_filling_available(device):
        if "holes" not in _logged_once:
            log.info("SAM 2: no compiled CUDA extension for device %s, so small mask holes are not filled "
                     "(fill_hole_area=%s ignored; sam2 itself would skip this step with a warning per frame)",
                     device, model.fill_hole_area)
            _logged_once.add("holes")
        model.fill_hole_area = 0


def read_sam2_state_dict(checkpoint: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in an official SAM 2 checkpoint (``{"model": {...}}``) or a bare state dict file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError("checkpoint", f"checkpoint file not found: {path}")
    obj: Any = load_torch_file(path)  # weights only: a file that needs more is refused (trust_checkpoint)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise DataFormatError(path, "expected a SAM 2 checkpoint ({'model': state dict of named tensors}), found "
                                    f"{type(obj).__name__}" + (" (empty)" if isinstance(obj, Mapping) and not obj
                                                               else ""))
    return dict(obj)


def load_sam2_checkpoint(model: SAM2Base, checkpoint: str | os.PathLike[str], config: str = "") -> None:
    """Load ``checkpoint`` into ``model`` in place, strictly; mismatches raise ConfigError naming the tensors and the
    file."""
    state = read_sam2_state_dict(checkpoint)
    target = model.state_dict()
    problems = mismatch(state, target)
    if problems:
        raise ConfigError("checkpoint",
                          f"{checkpoint} does not fit the model of config={config or '?'}: {problems}. Choose the "
                          "config of the checkpoint's model (SAM 2.1 files need configs/sam2.1/..., SAM 2.0 files "
                          "configs/sam2/..., and the same size t/s/b+/l)")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)


def build_sam2_model(config: str = DEFAULT_CONFIG, checkpoint: str | os.PathLike[str] | None = None,
                     image_size: int = 1024, device: str = "cpu", video: bool = False,
                     allow_random: bool = False) -> SAM2Base:
    """A SAM 2 model in eval mode on ``device``: ``SAM2VideoPredictor`` with ``video``, else ``SAM2Base``.

    ``config`` names a config inside the sam2 package (:func:`available_configs`); ``checkpoint`` an official
    SAM 2 file matching it. Raises ConfigError (naming ``checkpoint``, ``config`` or ``image_size``) for a
    missing/unset checkpoint, an unknown config, a bad size or a checkpoint of another architecture, and
    DataFormatError for an unreadable file.
    """
    if checkpoint is None:
        if not allow_random:
            raise ConfigError("checkpoint", "no SAM 2 checkpoint given (nothing is downloaded); set it to the path of "
                                            f"the file of config={config}, e.g. sam2.1_hiera_tiny.pt")
    elif not Path(checkpoint).is_file():
        raise ConfigError("checkpoint", f"checkpoint file not found: {checkpoint}")
    # only sam2's own configs: Hydra would follow a name like ../../x.yaml out of the package and instantiate the
    # _target_s of whatever file it finds there
    if config not in available_configs():
        raise ConfigError("config", f"{config!r} is not a model config of the sam2 package; choose one of "
                                    f"{available_configs()}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < SIZE_MULTIPLE \
            or image_size % SIZE_MULTIPLE:
        raise ConfigError("image_size", f"must be a positive multiple of {SIZE_MULTIPLE}, got {image_size!r}")
    builder = build_sam2_video_predictor if video else build_sam2
    try:
        with sam2_hydra():
            # checkpoint loaded below by us (sam2's own loader logs the keys and raises a bare RuntimeError)
            model = builder(config, ckpt_path=None, device="cpu", mode="eval",
                            hydra_overrides_extra=[f"++model.image_size={image_size}"])
    except MissingConfigException as exc:  # listed, but not readable (a broken install)
        raise ConfigError("config", f"no SAM 2 config {config!r} in the sam2 package; choose one of "
                                    f"{available_configs()}") from exc
    if checkpoint is not None:
        load_sam2_checkpoint(model, checkpoint, config)
    if video:
        _disable_hole_filling(model, device)
    return model.to(device).eval()
