"""On-disk cache of teacher image embeddings: a float16 numpy memmap plus a "filled" flag per slot.

Layout under ``root``: ``teacher-<key hash>.f16`` (N frames x V variants x C x g x g, float16),
``teacher-<key hash>.filled`` (N x V uint8 flags) and ``teacher-<key hash>.json`` (the key, for humans). The key
names everything the embedding depends on: the frames (data set content, frame list), the teacher (config,
checkpoint file, seed), the input size and the augmentation variants. A slot's flag is set only after its
embedding is flushed, so an interrupted run never reads a half-written embedding.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def key_digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike[str], key: Mapping[str, Any], num_frames: int, num_variants: int,
                 shape: tuple[int, ...]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.digest = key_digest(key)
        self.shape = (int(num_frames), int(num_variants), *(int(s) for s in shape))
        base = self.root / f"teacher-{self.digest}"
        self.data_path, self.flags_path = base.with_suffix(".f16"), base.with_suffix(".filled")
        expected = int(np.prod(self.shape)) * 2
        if not (self.data_path.is_file() and self.data_path.stat().st_size == expected and self.flags_path.is_file()
                and self.flags_path.stat().st_size == self.shape[0] * self.shape[1]):
            self._create(base, key)
        self.data = np.memmap(self.data_path, dtype=np.float16, mode="r+", shape=self.shape)
        self.filled = np.memmap(self.flags_path, dtype=np.uint8, mode="r+", shape=self.shape[:2])

    def _create(self, base: Path, key: Mapping[str, Any]) -> None:
        for path, size in ((self.data_path, int(np.prod(self.shape)) * 2),
                           (self.flags_path, self.shape[0] * self.shape[1])):
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as fh:  # sparse file of zeros: no disk written until used
                fh.truncate(size)
            os.replace(tmp, path)
        meta = {"key": key, "shape": self.shape, "dtype": "float16"}
        base.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")

    def has(self, index: np.ndarray, variant: np.ndarray) -> np.ndarray:
        return self.filled[np.asarray(index), np.asarray(variant)].astype(bool)

    def complete(self, index: np.ndarray) -> np.ndarray:
        """Whether every variant of each frame in ``index`` is cached."""
        return self.filled[np.asarray(index)].all(axis=1).astype(bool)

    def read(self, index: np.ndarray, variant: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.data[np.asarray(index), np.asarray(variant)], dtype=np.float32))

    def write(self, index: np.ndarray, embeddings: torch.Tensor) -> None:
        """``embeddings`` (M, V, C, g, g) for frames ``index`` (M,), every variant."""
        index = np.asarray(index)
        self.data[index] = embeddings.detach().to("cpu", torch.float16).numpy()
        self.data.flush()
        self.filled[index] = 1
        self.filled.flush()

    @property
    def fraction_filled(self) -> float:
        return float(np.asarray(self.filled).mean())
