from __future__ import annotations

import json
from pathlib import Path

import pytest

from samqa_framework.models.hf_folder import check_hf_folder
from samqa_framework.utils.errors import ConfigError


def check(path: object) -> Path:
    return check_hf_folder(path, "dinov2", "DINOv2", "facebook/dinov2-small", "backbone_path")


def test_a_folder_of_the_right_model_type_passes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    assert check(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("content, message", [(None, r"no config\.json"), ("{not json", r"config\.json: unreadable"),
                                               ('["a list"]', "unreadable"),
                                               ('{"model_type": "vit"}', r"'vit' model, not DINOv2")])
def test_bad_folders_name_the_key_and_the_folder(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        check(tmp_path)
    assert err.value.key == "backbone_path" and str(tmp_path) in str(err.value)


@pytest.mark.parametrize("path", [None, "", "  "])
def test_unset_says_what_to_save_there(path: str | None) -> None:
    with pytest.raises(ConfigError, match=r"not set: .*DINOv2 folder .*facebook/dinov2-small"):
        check(path)
