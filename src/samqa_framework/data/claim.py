"""An import's claim on its output folder (``import.json``): an import writes only into a new folder, an empty one,
a Hydra run's folder or one an import made, never into a folder of the user's (whose files it would replace)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json

IMPORT_RECORD = "import.json"
# What a Hydra run folder holds before the job writes anything (samqa-generate imports into its run folder).
_RUN_FILES = re.compile(r"^\.hydra$|.*\.log$")


@contextlib.contextmanager
def claimed(out_dir: Path, record: Mapping[str, Any], reuse: bool = True) -> Iterator[bool]:
    """Own ``out_dir`` for an import described by ``record``; yields True when a finished import of the same record is
    already there (nothing to do; never with ``reuse`` False: importers whose record cannot tell a changed source
    import again). A folder that holds anything but a Hydra run's files and was not made by an import
    is refused (a DataFormatError naming it): an import never writes into a user's folder. The record is written
    unfinished first and finished last, so an interrupted import is redone, not trusted."""
    out_dir = Path(out_dir)
    path = out_dir / IMPORT_RECORD
    record = json.loads(json.dumps(dict(record), default=str))
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            found = {}
        finished = found.get("complete") and (out_dir / DatasetManifest.FILE).is_file()
        if reuse and finished and found.get("record") == record:
            yield True
            return
    elif out_dir.is_dir():
        foreign = sorted(e.name for e in out_dir.iterdir() if not _RUN_FILES.match(e.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise DataFormatError(out_dir, f"exists and holds {shown} but no {IMPORT_RECORD}: not a data set imported "
                                  "here, so nothing is written into it (choose an empty or new folder: out_dir, or "
                                  "data.name for paths.dataset_dir)")
    elif out_dir.exists():
        raise DataFormatError(out_dir, "is a file, not a folder: choose another out_dir (or data.name for "
                              "paths.dataset_dir)")
    atomic_write_json(path, {"record": record, "complete": False})
    yield False
    atomic_write_json(path, {"record": record, "complete": True})
