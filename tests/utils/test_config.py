from __future__ import annotations

import json

from omegaconf import OmegaConf

from samqa_framework.utils.config import to_plain


def test_config_nodes_become_plain_resolved_containers() -> None:
    cfg = OmegaConf.create({"a": {"b": [1, 2], "c": "${a.b}"}, "d": None})
    plain = to_plain(cfg)
    assert plain == {"a": {"b": [1, 2], "c": [1, 2]}, "d": None}
    assert type(plain["a"]) is dict and type(plain["a"]["b"]) is list
    assert to_plain(cfg.a.b) == [1, 2] and type(to_plain(cfg.a.b)) is list


def test_nested_python_values_are_converted_and_leaves_kept() -> None:
    mixed = {"x": (1, (2, 3)), "node": OmegaConf.create({"k": 1}), "s": "text"}
    plain = to_plain(mixed)
    assert plain == {"x": [1, [2, 3]], "node": {"k": 1}, "s": "text"}
    json.dumps(plain)  # nothing OmegaConf (or tuple) is left
    assert to_plain(None) is None and to_plain(3.5) == 3.5
