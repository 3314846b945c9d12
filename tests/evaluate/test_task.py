"""samqa-evaluate's task: sequence names from the config are names, never paths out of gt_dir / pred_dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from samqa_framework import api
from samqa_framework.utils.errors import ConfigError


def test_a_sequence_that_is_a_path_is_refused_by_key(compose_cfg, tmp_path: Path) -> None:
    for folder in ("gt/a/gt", "x/gt", "pred"):  # x/gt/gt.txt is what sequences=[../x] would read
        (tmp_path / folder).mkdir(parents=True)
    for file in ("gt/a/gt/gt.txt", "x/gt/gt.txt", "pred/a.txt"):
        (tmp_path / file).write_text("1,1,10,10,20,40,1,1,1\n")
    cfg = compose_cfg("evaluate", [f"gt_dir={tmp_path}/gt", f"pred_dir={tmp_path}/pred", "logger=csv",
                                   "sequences=[a,../x]"])
    with pytest.raises(ConfigError, match=r"config key 'sequences': sequence name '\.\./x'"):
        api.evaluate(cfg)
    assert not (Path(cfg.out_dir) / "metrics.json").exists()
