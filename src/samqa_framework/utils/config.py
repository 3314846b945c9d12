"""Config values as plain Python, for code that must not hold OmegaConf nodes (JSON, hashes, hyperparameters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf


def to_plain(node: Any) -> Any:
    """``node`` with OmegaConf containers resolved to dicts and lists, and mappings, lists and tuples converted
    recursively (tuples become lists, as in YAML and JSON); any other value is returned as it is."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, Mapping):
        return {k: to_plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [to_plain(v) for v in node]
    return node
