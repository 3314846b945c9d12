from __future__ import annotations

from pathlib import Path

import pytest

from samqa_framework.data.sequence import DatasetManifest, Sequence


@pytest.fixture
def seq(tiny_rats: Path) -> Sequence:
    """The tiny rats' training sequence (40 frames, 160x120), what the annotator tests label."""
    return DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
