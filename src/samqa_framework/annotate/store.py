"""Append-only label store: one JSON line per annotated frame, flushed and fsynced before the next frame.

``<out_dir>/labels.jsonl`` holds ``{"frame": 7, "prompts": 0, "interventions": 0, "recoveries": 0, "labelled": true,
"instances": [{"id": 1, "box": [x1, y1, x2, y2], "score": 0.93, "source": "auto", "rle": {...} | null}, ...]}``
per line, in frame order from frame 1. A crash can at worst tear the last line: opening the store cuts it off,
so the run resumes at that frame. ``store.json`` holds the fingerprint (the method's config) of the run that wrote it:
resuming under another config is refused instead of mixing two methods in one file, and a second process writing
the same folder is refused at once, naming the first (``utils/locks.py``; close the store to release it). Frames
read back keep their masks encoded until one is used (see ``instance_from_rle``). ``label_set.py`` exports the
finished labels in the project's exchange formats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from samqa_framework.annotate.base import FrameLabels, instance_from_rle
from samqa_framework.data import rle
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json
from samqa_framework.utils.locks import FolderLock


def _to_record(labels: FrameLabels) -> dict[str, Any]:
    return {
        "frame": int(labels.frame), "prompts": int(labels.prompts), "interventions": int(labels.interventions),
        "recoveries": int(labels.recoveries), "labelled": bool(labels.labelled),
        "failed": {str(k): v for k, v in labels.failed.items()},
        "instances": [{"id": int(i.track_id), "box": [round(float(v), 2) for v in i.box],
                       "score": round(float(i.score), 5), "source": i.source, "rle": i.encoded_mask()}
                      for i in labels.instances],
    }


def _from_record(rec: Mapping[str, Any]) -> FrameLabels:
    instances = [instance_from_rle(int(d["id"]), np.asarray(d["box"], dtype=np.float64),
                                   None if d.get("rle") is None else rle.check(d["rle"]), float(d["score"]),
                                   str(d["source"])) for d in rec["instances"]]
    return FrameLabels(int(rec["frame"]), instances, int(rec.get("prompts", 0)), int(rec.get("interventions", 0)),
                       int(rec.get("recoveries", 0)), bool(rec.get("labelled", True)),
                       {int(k): str(v) for k, v in (rec.get("failed") or {}).items()})


class LabelStore:
    """The labels of one sequence under one method config, in ``out_dir``."""

    FILE = "labels.jsonl"
    META = "store.json"

    def __init__(self, out_dir: str | os.PathLike[str], fingerprint: Mapping[str, Any] | None = None) -> None:
        self.root = Path(out_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / self.FILE
        self.fingerprint = json.loads(json.dumps(dict(fingerprint or {}), default=str))
        self._lock: FolderLock | None = FolderLock(self.root, "this label store").acquire()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        meta = self.root / self.META
        if meta.is_file():
            try:
                found = json.loads(meta.read_text(encoding="utf-8")).get("fingerprint")
            except (ValueError, AttributeError) as exc:
                raise DataFormatError(meta, f"not a store.json ({exc.__class__.__name__}: {exc}); use a new "
                                      f"out_dir") from None
            if found != self.fingerprint:
                changed = sorted(k for k in set(found or {}) | set(self.fingerprint)
                                 if (found or {}).get(k) != self.fingerprint.get(k))
                raise DataFormatError(meta, f"these labels were made with another configuration (differs in "
                                      f"{', '.join(changed)}); use a new out_dir or delete {self.root}")
        elif self.path.exists() and self.path.stat().st_size:
            raise DataFormatError(self.path, f"label file without its {self.META}; use a new out_dir")
        else:
            atomic_write_json(meta, {"fingerprint": self.fingerprint})
        self._repair()

    @classmethod
    def read(cls, out_dir: str | os.PathLike[str]) -> LabelStore:
        """An existing store opened for reading, whatever configuration made it (nothing is written or repaired)."""
        store = cls.__new__(cls)
        store.root = Path(out_dir)
        store.path = store.root / cls.FILE
        store.fingerprint = None
        store._lock = None
        if not store.path.is_file():
            raise DataFormatError(store.path, "no label store here (run the annotation first)")
        return store

    def close(self) -> None:
        """Release the folder to other writers (the labels are on disk already: every append is fsynced)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repair(self) -> None:
        """Cut a torn last line (a crash during a write) so appends start on a line boundary."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)

    def records(self) -> Iterator[FrameLabels]:
        """The stored frames, in order, one at a time (memory does not grow with the video)."""
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as fh:
            expected = 1
            for lineno, text in enumerate(fh, start=1):
                try:
                    labels = _from_record(json.loads(text))
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataFormatError(self.path, f"bad label record ({exc.__class__.__name__}: {exc})",
                                          lineno) from None
                if labels.frame != expected:
                    raise DataFormatError(self.path, f"frame {labels.frame} where frame {expected} was expected",
                                          lineno)
                expected += 1
                yield labels

    def append(self, labels: FrameLabels) -> None:
        """Write one frame durably (flush + fsync): a crash after this call never loses it."""
        line = json.dumps(_to_record(labels), separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
