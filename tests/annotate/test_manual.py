from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from samqa_framework.annotate.manual import ManualAnnotator
from samqa_framework.data.sequence import Sequence


def test_manual_labels_are_the_usable_ground_truth_every_nth_frame(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("generate", ["data.size=tiny", "+annotator=manual", "annotator.every=5"])
    manifest = instantiate(cfg.data, _convert_="all").build(tmp_path / "d")
    seq = Sequence(tmp_path / "d" / manifest.train[0])
    labels = instantiate(cfg.annotator).annotate(seq)
    gt = seq.gt()
    assert set(np.unique(labels.frame).tolist()) <= set(range(1, 41, 5))
    expected = gt.select((gt.conf > 0) & ((gt.frame - 1) % 5 == 0))
    np.testing.assert_array_equal(labels.box, expected.box)
    np.testing.assert_array_equal(labels.track_id, expected.track_id)
    assert (labels.conf > 0).all()
    with pytest.raises(ValueError, match="every"):
        ManualAnnotator(every=0)
