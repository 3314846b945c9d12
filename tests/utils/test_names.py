"""Names from data or config are file names, never paths: one check, errors naming the file and line or the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from samqa_framework.utils.errors import ConfigError, DataFormatError
from samqa_framework.utils.names import check_name, name_problem


@pytest.mark.parametrize("name", ["synthetic_rats-train", "MOT17-02-FRCNN", "seq 1", "a.b", "TUD-Campus", "con2"])
def test_plain_names_pass(name: str) -> None:
    assert name_problem(name) is None and check_name(name, "sequence name", key="sequences") == name


@pytest.mark.parametrize("name,problem", [
    ("../../x", "'/'"), ("a/b", "'/'"), ("/etc", "'/'"), ("..\\x", "'\\\\'"), ("C:x", "':'"), ("..", "'..'"),
    (".", "'.'"), ("", "empty"), ("   ", "empty"), (" x", "white space"), ("a\x00b", "'\\x00'"), ("NUL", "reserved"),
    ("com1.txt", "reserved"), (3, "text"), (None, "text"),
])
def test_paths_and_reserved_names_are_refused(name: object, problem: str) -> None:
    assert problem in (name_problem(name) or "")


def test_the_error_names_the_file_and_line_or_the_key(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"seqinfo\.ini:2: sequence name '\.\./x' must not hold '/'") as err:
        check_name("../x", "sequence name", path=tmp_path / "seqinfo.ini", line=2)
    assert err.value.line == 2
    with pytest.raises(ConfigError, match=r"config key 'sequences': sequence name '\.\.' must not be") as cerr:
        check_name("..", "sequence name", key="sequences")
    assert cerr.value.key == "sequences"
