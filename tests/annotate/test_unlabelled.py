"""Your own, unlabelled video in samqa-annotate: methods that need no ground truth run, those made of it say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samqa_framework.annotate.ground_truth import GroundTruthMissing
from samqa_framework.annotate.label_set import read_label_set, read_sequence_record
from samqa_framework.annotate.task import annotate
from tests.data.test_video_import import write_video


def _args(tmp_path: Path, *extra: str) -> list[str]:
    write_video(tmp_path / "clip.mp4", 6, size=(64, 48))
    return ["data=video", f"data.source={tmp_path / 'clip.mp4'}", "data.num_animals=1",
            f"paths.data_dir={tmp_path / 'data'}", f"out_dir={tmp_path / 'labels'}", "logger=csv", "progress=false",
            "model.image_size=64", *extra]


@pytest.mark.parametrize("method", [["annotator=manual"], ["annotator=samqa", "prompts=oracle"]])
def test_what_plays_the_person_with_ground_truth_names_the_sequence(compose_cfg, tmp_path: Path,
                                                                    method: list[str]) -> None:
    with pytest.raises(GroundTruthMissing) as err:
        annotate(compose_cfg("annotate", _args(tmp_path, *method)))
    assert "sequence clip-train has no ground truth" in str(err.value) and "prompts=queue" in str(err.value)
    assert err.value.path == str(tmp_path / "data" / "clip-imported" / "clip-train" / "gt" / "gt.txt")
    assert not (tmp_path / "labels" / "clip-train").exists()  # refused before a store was made


def test_samqa_with_a_person_answering_labels_an_unlabelled_video(compose_cfg, tmp_path: Path) -> None:
    queue = tmp_path / "labels" / "queue" / "clip-train"
    queue.mkdir(parents=True)
    # the person's boxes for every frame (a random-weight SAM fails the checks, so it asks on each one)
    (queue / "answers.json").write_text(json.dumps({str(f): [{"id": 1, "box": [10, 8, 40, 30]}] for f in range(1, 7)}))
    (result,) = annotate(compose_cfg("annotate", _args(tmp_path, "annotator=samqa", "prompts=queue")))
    assert result.quality is None and not (result.out_dir / "label_quality.json").exists()
    seq, frames = read_sequence_record(result.out_dir)  # the label set knows its sequence (samqa-export reads it)
    assert seq.name == "clip-train" and not seq.has_gt() and frames == 6
    labels = read_label_set(result.out_dir, seq)
    assert labels.labelled == [1, 2, 3, 4, 5, 6] and set(labels.boxes.track_id.tolist()) == {1}
