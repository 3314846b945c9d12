"""Names read from data or config (sequence names, data set names) become folder and file names: never paths.

One check, used by every reader of such a name: a name from ``seqinfo.ini`` or a sequence list joined to an output
folder must not reach outside it (``../../x``), be absolute, or be a name the file system treats specially.
"""

from __future__ import annotations

import os
import re

from samqa_framework.utils.errors import ConfigError, DataFormatError

# Windows device names (also with an extension: "nul.txt"); "." and ".." are the folder itself and its parent.
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
# path separators of any platform, a drive's colon, control characters (NUL ends a path in the OS)
_FORBIDDEN = re.compile(r"[/\\:\x00-\x1f\x7f]")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be used as a file or folder name, or None when it can."""
    if not isinstance(name, str):
        return f"must be a text, got {type(name).__name__}"
    if not name.strip():
        return "must not be empty"
    if name != name.strip():
        return "must not start or end with white space"
    if name in (".", ".."):
        return "must not be '.' or '..' (a folder, not a name)"
    bad = _FORBIDDEN.search(name)
    if bad:
        return f"must not hold {bad.group()!r} (a name, not a path)"
    if _RESERVED.match(name):
        return "is a reserved device name"
    return None


def check_name(name: object, what: str, *, path: str | os.PathLike[str] | None = None, line: int | None = None,
               key: str | None = None) -> str:
    """``name`` when it is a plain file name; else a ``DataFormatError`` naming ``path`` (and ``line``) when it was
    read from a file, or a ``ConfigError`` naming ``key`` when it came from the config. ``what`` says which name."""
    problem = name_problem(name)
    if problem is None:
        return str(name)
    message = f"{what} {name!r} {problem}"
    if path is not None:
        raise DataFormatError(path, message, line)
    raise ConfigError(key or "name", message)
