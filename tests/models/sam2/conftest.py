"""One random SAM 2 checkpoint (official format) per session, and single-threaded torch for these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.models.helpers_checkpoints import SAM2_TEST_SIZE, write_random_sam2_checkpoint


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """These tiny models gain nothing from 2 threads on a shared CPU (see tests/models/conftest.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sam2.1_hiera_tiny.pt``'s format and keys, random weights (seed 0)."""
    return write_random_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random.pt",
                                        image_size=SAM2_TEST_SIZE, seed=0)
