"""One random SAM 2 checkpoint (official format) per session, and single-threaded torch for these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.helpers_checkpoints import SAM2_TEST_SIZE, write_random_sam2_checkpoint


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sam2.1_hiera_tiny.pt``'s format and keys, random weights (seed 0)."""
    return write_random_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random.pt",
                                        image_size=SAM2_TEST_SIZE, seed=0)
