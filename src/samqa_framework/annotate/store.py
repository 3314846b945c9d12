"""Append-only label store: one JSON line per annotated frame, flushed and fsynced before the next frame.

``<out_dir>/labels.jsonl`` holds ``{"frame": 7, "prompts": 0, "interventions": 0, "recoveries": 0, "labelled": true,
"instances": [{"id": 1, "box": [x1, y1, x2, y2], "score": 0.93, "source": "auto", "rle": {...} | null}, ...]}``
per line, in frame order from frame 1. A crash can at worst tear the last line: opening the store cuts it off,
so the run resumes at that frame. ``store.json`` holds the fingerprint (the method's config) of the run that wrote it:
resuming under another config is refused instead of mixing two methods in one file, and a second process writing
the same folder is refused at once, naming the first (``utils/locks.py``; close the store to release it). Frames
read back keep their masks encoded until one is used (see ``instance_from_rle``). ``label_set.py`` exports the
finished labels in the project's exchange formats.

Two journals beside it, with the same guarantees (one fsynced line per entry, a torn last line cut off):
``answers.jsonl`` holds each person's answer before the annotator uses it (a run killed right after an answer resumes
with it instead of asking again), ``corrections.jsonl`` the fixes made after the fact (``box``, ``remove``, ``swap`` of
two identities from a frame to the end). ``records(corrected=True)`` applies the corrections in journal order; the label
files, reports and exports are built from that view, while a resumed annotator replays the records as it made them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from samqa_framework.annotate.base import FrameLabels, Instance, instance_from_rle
from samqa_framework.data import rle
from samqa_framework.utils.errors import DataFormatError
from samqa_framework.utils.io import atomic_write_json
from samqa_framework.utils.locks import FolderLock

ANSWERS = "answers.jsonl"
CORRECTIONS = "corrections.jsonl"
CORRECTION_OPS = ("box", "remove", "swap")


def _cut_torn_line(path: Path) -> None:
    """Cut a torn last line (a crash during a write) so appends start on a line boundary."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)


def _append_line(path: Path, record: Mapping[str, Any]) -> None:
    """One JSON line, flushed and fsynced: a crash after this call never loses it."""
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _journal(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A journal's complete lines with their line numbers (a torn last line was never acknowledged: skipped)."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.endswith("\n"):
                return
            try:
                entry = json.loads(text)
            except ValueError as exc:
                raise DataFormatError(path, f"bad journal entry ({exc})", lineno) from None
            if not isinstance(entry, dict):
                raise DataFormatError(path, "bad journal entry (not an object)", lineno)
            yield lineno, entry


def check_correction(op: Mapping[str, Any]) -> dict[str, Any]:
    """A correction as the journal stores it; ValueError names what is wrong. ``box``: ``{"op": "box", "frame": f,
    "id": i, "box": [x1, y1, x2, y2]}`` sets (or adds) identity i's box on frame f, without a mask (the old one no
    longer matches); ``remove``: ``{"op": "remove", "frame": f, "id": i}``; ``swap``: ``{"op": "swap", "frame": f,
    "ids": [a, b]}`` exchanges identities a and b on frame f and every later frame."""
    kind = op.get("op")
    if kind not in CORRECTION_OPS:
        raise ValueError(f"op must be one of {list(CORRECTION_OPS)}, got {kind!r}")
    frame = op.get("frame")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1:
        raise ValueError(f"frame must be a frame number >= 1, got {frame!r}")
    if kind == "swap":
        ids = op.get("ids")
        if (not isinstance(ids, list) or len(ids) != 2 or len(set(ids)) != 2
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in ids)):
            raise ValueError(f"ids must be two different identities >= 1, got {ids!r}")
        return {"op": kind, "frame": frame, "ids": [int(i) for i in ids]}
    track_id = op.get("id")
    if not isinstance(track_id, int) or isinstance(track_id, bool) or track_id < 1:
        raise ValueError(f"id must be an identity >= 1, got {track_id!r}")
    if kind == "remove":
        return {"op": kind, "frame": frame, "id": track_id}
    box = op.get("box")
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)):
        raise ValueError(f"box must be [x1, y1, x2, y2] numbers, got {box!r}")
    arr = np.asarray(box, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise ValueError(f"box {box} is not x1 < x2, y1 < y2")
    return {"op": kind, "frame": frame, "id": track_id, "box": [round(float(v), 2) for v in arr]}


def apply_corrections(labels: FrameLabels, corrections: list[Mapping[str, Any]]) -> FrameLabels:
    """``labels`` with the corrections that reach its frame applied in journal order (masks are not decoded)."""
    instances = list(labels.instances)
    failed = dict(labels.failed)
    changed = False
    for op in corrections:
        if op["op"] == "swap" and labels.frame >= op["frame"]:
            changed = True
            a, b = op["ids"]
            swap = {a: b, b: a}
            for k, inst in enumerate(instances):
                if inst.track_id in swap:
                    instances[k] = copy.copy(inst)
                    instances[k].track_id = swap[inst.track_id]
            failed = {swap.get(i, i): why for i, why in failed.items()}
        elif op["frame"] == labels.frame:
            changed = True
            instances = [i for i in instances if i.track_id != op["id"]]
            if op["op"] == "box":
                instances.append(Instance(op["id"], np.asarray(op["box"], dtype=np.float64), 1.0, "manual"))
    if not changed:
        return labels
    instances.sort(key=lambda i: i.track_id)
    return dataclasses.replace(labels, instances=instances, failed=failed)


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
    def read(cls, out_dir: str | os.PathLike[str], lock: bool = False) -> LabelStore:
        """An existing store opened for reading, whatever configuration made it (its records are neither written nor
        repaired). ``lock``: held as a writer (the review page appends corrections and rebuilds the label files: an
        annotation resuming in the same folder meanwhile is refused, naming it); ``close`` releases it."""
        store = cls.__new__(cls)
        store.root = Path(out_dir)
        store.path = store.root / cls.FILE
        store.fingerprint = None
        store._lock = None
        if not store.path.is_file():
            raise DataFormatError(store.path, "no label store here (run the annotation first)")
        if lock:
            store._lock = FolderLock(store.root, "this label store").acquire()
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
        _cut_torn_line(self.path)

    def records(self, corrected: bool = False) -> Iterator[FrameLabels]:
        """The stored frames, in order, one at a time (memory does not grow with the video); ``corrected``: with the
        corrections journal applied."""
        if not self.path.is_file():
            return
        corrections = self.corrections() if corrected else []
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
                yield apply_corrections(labels, corrections) if corrections else labels

    def append(self, labels: FrameLabels) -> None:
        """Write one frame durably (flush + fsync): a crash after this call never loses it."""
        _append_line(self.path, _to_record(labels))

    # -- random access (the review page jumps to any frame) ----------------------------------------------------
    def _offsets(self) -> list[int]:
        """Byte offset of each complete record line, extended by what was appended since the last call."""
        offsets, scanned = getattr(self, "_index", ([], 0))
        if self.path.is_file():
            with open(self.path, "rb") as fh:
                fh.seek(scanned)
                for line in fh:
                    if not line.endswith(b"\n"):
                        break
                    offsets.append(scanned)
                    scanned += len(line)
        self._index = (offsets, scanned)
        return offsets

    def count(self) -> int:
        """How many frames are stored."""
        return len(self._offsets())

    def record(self, frame: int, corrected: bool = False) -> FrameLabels | None:
        """Frame ``frame``'s labels (None when not stored), without reading the frames before it."""
        offsets = self._offsets()
        if not 1 <= frame <= len(offsets):
            return None
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(offsets[frame - 1])
            text = fh.readline()
        try:
            labels = _from_record(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(self.path, f"bad label record ({exc.__class__.__name__}: {exc})", frame) from None
        return apply_corrections(labels, self.corrections()) if corrected else labels

    # -- journals ----------------------------------------------------------------------------------------------
    def append_answer(self, frame: int, boxes: Mapping[int, np.ndarray], by: str) -> None:
        """A person's (or the oracle's, ``by``) boxes for ``frame``, durable before the annotator uses them."""
        path = self.root / ANSWERS
        _cut_torn_line(path)
        _append_line(path, {"frame": int(frame), "by": by,
                            "boxes": [{"id": int(i), "box": [round(float(v), 2) for v in b]}
                                      for i, b in sorted(boxes.items())]})

    def answers(self) -> dict[int, dict[int, np.ndarray]]:
        """The journal's answers by frame (a later answer to a frame replaces an earlier one)."""
        path = self.root / ANSWERS
        out: dict[int, dict[int, np.ndarray]] = {}
        for lineno, entry in _journal(path):
            try:
                out[int(entry["frame"])] = {int(b["id"]): np.asarray(b["box"], dtype=np.float64).reshape(4)
                                            for b in entry["boxes"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(path, f"bad answer ({exc.__class__.__name__}: {exc})", lineno) from None
        return out

    def append_correction(self, op: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``op`` (:func:`check_correction`, ValueError) and journal it durably; returns it as stored."""
        entry = check_correction(op)
        path = self.root / CORRECTIONS
        _cut_torn_line(path)
        _append_line(path, entry)
        return entry

    def corrections(self) -> list[dict[str, Any]]:
        """The corrections journal, in order."""
        path = self.root / CORRECTIONS
        out = []
        for lineno, entry in _journal(path):
            try:
                out.append(check_correction(entry))
            except ValueError as exc:
                raise DataFormatError(path, f"bad correction ({exc})", lineno) from None
        return out
