"""Local Hugging Face model folders (what ``save_pretrained`` writes): checked before ``transformers`` loads them,
so that a wrong path fails with the config key named instead of a download attempt or a transformers traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

from samqa_framework.utils.errors import ConfigError


def check_hf_folder(path: str | os.PathLike[str] | None, model_type: str, what: str, example: str, key: str) -> Path:
    """``path`` as a ``Path`` if it is a folder whose ``config.json`` names ``model_type``, else a ``ConfigError``
    naming ``key``. ``what``: the model's name in messages (e.g. "DINOv2"); ``example``: a model to save there."""
    if path is None or str(path).strip() == "":
        raise ConfigError(key, f"not set: point it to a local Hugging Face {what} folder (nothing is downloaded; "
                               f"e.g. {example} saved there with save_pretrained)")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(key, f"{what} model folder not found: {folder} (nothing is downloaded; save the model "
                               "there with save_pretrained)")
    config = folder / "config.json"
    if not config.is_file():
        raise ConfigError(key, f"{folder} is not a Hugging Face model folder: no config.json")
    try:
        found = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ConfigError(key, f"{config}: unreadable ({exc})") from exc
    if found != model_type:
        raise ConfigError(key, f"{folder} holds a {found!r} model, not {what} (model_type {model_type!r})")
    return folder
