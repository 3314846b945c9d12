from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from samqa_framework.study.cache import PACKAGE_DIR, StageCache, code_fingerprint, spec_key


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


def test_the_key_holds_the_code_so_a_code_change_re_runs_a_stage(tmp_path: Path) -> None:
    calls = []

    def fn(stage_dir: Path) -> dict:
        calls.append(stage_dir)
        return {}

    old = StageCache(tmp_path, code="aaaa").run("s", {"a": 1}, fn)
    assert StageCache(tmp_path, code="aaaa").run("s", {"a": 1}, fn).cached
    new = StageCache(tmp_path, code="bbbb").run("s", {"a": 1}, fn)
    assert not new.cached and new.dir != old.dir and len(calls) == 2
    assert json.loads((new.dir / "spec.json").read_text())["code"] == "bbbb"


def test_the_code_fingerprint_follows_every_source_edit_and_library_version(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    base = code_fingerprint(pkg)
    assert base == code_fingerprint(pkg) == code_fingerprint(PACKAGE_DIR)  # content, not location
    assert StageCache(tmp_path).code == base  # the default is this package's own code
    track = pkg / "track" / "bytetrack.py"
    track.write_text(track.read_text() + "\n# a comment\n")
    edited = code_fingerprint(pkg)
    assert edited != base
    (pkg / "track" / "new_module.py").write_text("")
    assert code_fingerprint(pkg) not in (base, edited)
    # a library's version is part of it too (here one that is not installed, then installed "torch")
    assert code_fingerprint(PACKAGE_DIR, ["torch"]) != code_fingerprint(PACKAGE_DIR, ["no-such-dist"])


def test_a_damaged_stage_record_names_its_file(tmp_path: Path) -> None:
    cache = StageCache(tmp_path, code="c")
    first = cache.run("s", {"a": 1}, lambda d: {"value": 1})
    (first.dir / "done.json").write_text('{"stage": "s", "outp')
    from samqa_framework.utils.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"done.json: a damaged stage record .*delete"):
        cache.run("s", {"a": 1}, lambda d: {"value": 1})


def test_a_stage_another_process_runs_is_waited_for_naming_it(tmp_path: Path, own_log) -> None:
    import subprocess
    import sys

    cache = StageCache(tmp_path, code="c")
    stage_dir = tmp_path / "s" / spec_key({"a": 1, "code": "c"})
    hold = ("import sys, time\nfrom samqa_framework.utils.locks import FolderLock\n"
            "FolderLock(sys.argv[1], 'stage s').acquire()\nprint('locked', flush=True)\ntime.sleep(3)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(stage_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        caplog = own_log("samqa_framework.study.cache")
        result = cache.run("s", {"a": 1}, lambda d: {"value": 2})
    finally:
        proc.wait()
    assert result.outputs == {"value": 2} and not result.cached
    assert f"stage s is being written by another process (pid {proc.pid}" in caplog.text
