"""utils/io.py: several files written as one unit (atomic_files), and its recovery after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.io import atomic_dir, atomic_files, atomic_write_text, check_output_folder, recover_files


def _write_set(folder: Path, tag: str, fail_after: int | None = None) -> None:
    with atomic_files(folder, "m") as tmp:
        for i, name in enumerate(("a.json", "b.csv", "c.md")):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("injected")
            (tmp / name).write_text(f"{tag} {name}\n")


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() if p.is_file() else "<folder>" for p in sorted(folder.iterdir())}


def test_a_set_lands_together_and_keeps_other_files(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("user\n")
    _write_set(tmp_path, "one")
    assert _contents(tmp_path) == {"a.json": "one a.json\n", "b.csv": "one b.csv\n", "c.md": "one c.md\n",
                                   "keep.txt": "user\n"}


@pytest.mark.parametrize("fail_after", [0, 1, 2])
def test_a_failure_between_the_files_leaves_the_old_set(tmp_path: Path, fail_after: int):
    _write_set(tmp_path, "old")
    before = _contents(tmp_path)
    with pytest.raises(RuntimeError, match="injected"):
        _write_set(tmp_path, "new", fail_after=fail_after)
    assert _contents(tmp_path) == before  # the old three, and no temporary left behind


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_crash_before_the_commit_is_cleaned_by_the_next_write(tmp_path: Path):
    _write_set(tmp_path, "old")
    orphan = tmp_path / f".m.{_dead_pid()}.x1y2.tmp"  # what a kill -9 inside the block leaves
    orphan.mkdir()
    (orphan / "a.json").write_text("half")
    assert _contents(tmp_path)["a.json"] == "old a.json\n" and orphan.name in _contents(tmp_path)
    _write_set(tmp_path, "new")
    assert _contents(tmp_path) == {"a.json": "new a.json\n", "b.csv": "new b.csv\n", "c.md": "new c.md\n"}


def test_a_crash_after_the_commit_is_finished_by_recovery(tmp_path: Path):
    _write_set(tmp_path, "old")
    commit = tmp_path / ".m.commit"  # a kill after the commit, with one file of three moved already
    commit.mkdir()
    (tmp_path / "a.json").write_text("new a.json\n")
    for name in ("b.csv", "c.md"):
        (commit / name).write_text(f"new {name}\n")
    recover_files(tmp_path, "m")
    assert _contents(tmp_path) == {"a.json": "new a.json\n", "b.csv": "new b.csv\n", "c.md": "new c.md\n"}


def test_units_of_other_names_are_left_alone(tmp_path: Path):
    other = tmp_path / ".n.commit"
    other.mkdir()
    _write_set(tmp_path, "one")
    assert other.is_dir()


def test_an_output_folder_under_a_file_names_the_key(tmp_path: Path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"config key 'out_dir': .*file/a/b lies under .*file, which is a file"):
        check_output_folder("out_dir", tmp_path / "file" / "a" / "b")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_output_folder("out_dir", tmp_path / "file")
    assert check_output_folder("out_dir", tmp_path / "new" / "x") == tmp_path / "new" / "x"


def test_only_temporaries_of_writers_that_are_gone_are_orphans(tmp_path: Path):
    dead, live = tmp_path / f".a.txt.{_dead_pid()}.k3j_.tmp", tmp_path / f".a.txt.{os.getppid()}.k3j_.tmp"
    other = tmp_path / f".b.txt.{_dead_pid()}.k3j_.tmp"  # another file's
    for path in (dead, live, other):
        path.write_text("half")
    atomic_write_text(tmp_path / "a.txt", "whole\n")
    assert not dead.exists() and live.exists() and other.exists()
    assert (tmp_path / "a.txt").read_text() == "whole\n"


def test_a_kill_between_the_renames_of_atomic_dir_puts_the_old_folder_back(tmp_path: Path):
    with atomic_dir(tmp_path / "seq") as tmp:
        (tmp / "f").write_text("old\n")
    os.replace(tmp_path / "seq", tmp_path / ".seq.old")  # the kill came after the first rename
    orphan = tmp_path / f".seq.{_dead_pid()}.abc1.tmp"
    orphan.mkdir()
    (orphan / "f").write_text("new, unfinished\n")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "seq"):
        raise RuntimeError("the next write fails too")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"] and (tmp_path / "seq" / "f").read_text() == "old\n"
