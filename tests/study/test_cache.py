from __future__ import annotations

import json
from pathlib import Path

import pytest

from samqa_framework.study.cache import StageCache, spec_key


def test_a_finished_stage_is_reused_and_key_ignores_order(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)
    calls = []

    def fn(stage_dir: Path) -> dict:
        calls.append(stage_dir)
        (stage_dir / "out.txt").write_text("x")
        return {"value": 7}

    first = cache.run("s", {"a": 1, "b": [1, 2]}, fn)
    second = cache.run("s", {"b": [1, 2], "a": 1}, fn)
    assert len(calls) == 1 and not first.cached and second.cached
    assert second.outputs == {"value": 7} and second.dir == first.dir
    assert json.loads((first.dir / "done.json").read_text())["outputs"] == {"value": 7}
    other = cache.run("s", {"a": 2, "b": [1, 2]}, fn)
    assert len(calls) == 2 and other.dir != first.dir
    assert spec_key({"a": 1}) != spec_key({"a": "1"})


def test_an_unfinished_stage_runs_again_in_the_same_folder(tmp_path: Path) -> None:
    cache = StageCache(tmp_path)

    def crash(stage_dir: Path) -> dict:
        (stage_dir / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.run("s", {"a": 1}, crash)
    seen = {}

    def resume(stage_dir: Path) -> dict:
        seen["partial"] = (stage_dir / "partial.txt").read_text()
        return {"ok": True}

    res = cache.run("s", {"a": 1}, resume)
    assert seen == {"partial": "half"} and not res.cached and res.outputs == {"ok": True}
