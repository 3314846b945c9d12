"""What a data set's files hold, as a short hash: part of a label store's fingerprint and of every cached stage's key,
so that editing an imported ``gt.txt`` or pointing ``data.source`` at another video re-runs what depends on it
instead of reusing or resuming what the old files gave (keys of paths alone cannot see that).

Contents, not paths: a copied or moved data set keeps its identity. Files up to ``FULL_HASH_BYTES`` are hashed whole;
a larger video by its size, its first and last MiB (a lab's hour of video is GBs; the container's header and index
sit at its ends, so a re-encode or a cut changes them). A frame folder by its file names and sizes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from samqa_framework.data.sequence import DatasetManifest, Sequence

FULL_HASH_BYTES = 64 << 20
_EDGE = 1 << 20


def file_identity(path: str | os.PathLike[str]) -> str:
    """A hash of the file's contents (whole up to 64 MiB; else size + first and last MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h.update(str(size).encode() + b"\0")
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.hexdigest()[:16]


def _folder_identity(folder: Path) -> str:
    h = hashlib.sha256()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file():
            h.update(f"{entry.name}\0{entry.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def sequence_identity(sequence: Sequence) -> str:
    """The sequence's info, ground truth (boxes and masks) and frames, as one hash."""
    h = hashlib.sha256()
    info = sequence.root / "seqinfo.ini"
    parts: list[tuple[str, Path]] = [("info", info), ("gt", sequence.gt_path), ("masks", sequence.masks_path)]
    for name, path in parts:
        h.update(f"{name}:{file_identity(path) if path.is_file() else '-'}\n".encode())
    h.update(f"frames:{frames_identity(sequence)}\n".encode())
    return h.hexdigest()[:16]


def frames_identity(sequence: Sequence) -> str:
    """The sequence's frames alone (video file or frame folder, and the first frame used), as ``<hash>@<start>``:
    what its decoded frames depend on, and not its labels (``data.frame_cache`` keys on it)."""
    frames, start = sequence.frames_location()
    frames_id = _folder_identity(frames) if frames.is_dir() else file_identity(frames)
    return f"{frames_id}@{start}"


def dataset_identity(manifest: DatasetManifest, root: str | os.PathLike[str], splits: Iterable[str]) -> str:
    """The identities of the sequences of ``splits`` of a data set, in order, as one hash."""
    h = hashlib.sha256()
    for split in splits:
        for seq in manifest.sequences(root, split):
            h.update(f"{split}/{seq.name}:{sequence_identity(seq)}\n".encode())
    return h.hexdigest()[:16]
