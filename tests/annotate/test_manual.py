from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from samqa_framework.annotate.manual import ManualAnnotator
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.data.sequence import DatasetManifest


def test_manual_labels_are_the_usable_ground_truth_every_nth_frame(compose_cfg, tiny_rats: Path,
                                                                   tmp_path: Path) -> None:
    cfg = compose_cfg("annotate", ["annotator=manual", "annotator.every=5"])
    seq = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0]
    annotate_sequence(instantiate(cfg.annotator), seq, tmp_path, {}, progress=False)
    labels = (tmp_path / "labels.txt").read_text().splitlines()
    gt = seq.gt()
    expected = gt.select((gt.conf > 0) & ((gt.frame - 1) % 5 == 0))
    assert len(labels) == len(expected)
    assert {int(line.split(",")[0]) for line in labels} == set(range(1, 41, 5))


def test_every_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="every"):
            ManualAnnotator(every=bad)
