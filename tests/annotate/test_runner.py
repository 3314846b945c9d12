from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.manual import ManualAnnotator, MixedAnnotator
from samqa_framework.annotate.prompts import OraclePrompts, PromptsNeeded, QueuePrompts
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.utils.errors import DataFormatError
from tests.annotate.helpers import GtMaskPredictor
from tests.annotate.samqa.test_annotator import QA


class Crash(Exception):
    pass


class CrashingAnnotator(SamQaAnnotator):
    """Dies (as a killed process would) when it reaches ``crash_at``."""

    crash_at = 0

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if frame == self.crash_at:
            raise Crash(frame)
        return super().step(frame, image)


def _records(path: Path) -> list[str]:
    return path.joinpath("labels.jsonl").read_text().splitlines()


def test_crash_and_resume_gives_the_uninterrupted_labels(seq: Sequence, tmp_path: Path) -> None:
    corrupt = {7: "merge", 15: "lost", 23: "merge"}
    full = SamQaAnnotator(GtMaskPredictor(seq, corrupt), OraclePrompts(), QA)
    annotate_sequence(full, seq, tmp_path / "full", {"m": 1}, progress=False)
    for crash_at in (2, 16, 24):  # right after init, just after a manual prompt, after a recovery
        out = tmp_path / f"crash{crash_at}"
        crashing = CrashingAnnotator(GtMaskPredictor(seq, corrupt), OraclePrompts(), QA)
        crashing.crash_at = crash_at
        with pytest.raises(Crash):
            annotate_sequence(crashing, seq, out, {"m": 1}, progress=False)
        assert len(_records(out)) == crash_at - 1
        resumed = SamQaAnnotator(GtMaskPredictor(seq, corrupt), OraclePrompts(), QA)
        result = annotate_sequence(resumed, seq, out, {"m": 1}, progress=False)
        assert _records(out) == _records(tmp_path / "full")
        assert result.frames == seq.info.seq_length
    assert (tmp_path / "full" / "labels.txt").read_text() == (out / "labels.txt").read_text()
    quality = json.loads((out / "label_quality.json").read_text())
    assert quality["interventions"] == 2 and quality["frames_recovered"] == 2


def test_queue_stops_for_a_person_and_resumes_with_their_boxes(seq: Sequence, tmp_path: Path) -> None:
    queue = QueuePrompts(tmp_path / "queue")
    annotator = SamQaAnnotator(GtMaskPredictor(seq, {5: "empty"}, corrupt_points=True), queue, QA)
    with pytest.raises(PromptsNeeded, match="frame 1 needs manual boxes"):
        annotate_sequence(annotator, seq, tmp_path / "labels", {}, progress=False)
    qdir = tmp_path / "queue" / seq.name
    assert json.loads((qdir / "requests.json").read_text())["frame"] == 1
    assert (qdir / "frame_000001.png").is_file()
    gt = seq.gt()

    def answer(frame: int) -> dict:
        rows = gt.rows_of(frame)
        return {str(frame): [{"id": int(i), "box": b.tolist()} for i, b in zip(rows.track_id, rows.xyxy, strict=True)]}

    (qdir / "answers.json").write_text(json.dumps(answer(1)))
    with pytest.raises(PromptsNeeded, match="frame 5 "):
        annotate_sequence(annotator, seq, tmp_path / "labels", {}, progress=False)
    assert len(_records(tmp_path / "labels")) == 4  # frames 1-4 kept
    (qdir / "answers.json").write_text(json.dumps({**answer(1), **answer(5)}))
    result = annotate_sequence(annotator, seq, tmp_path / "labels", {}, progress=False)
    assert result.frames == 40 and result.counts["interventions"] == 2
    assert result.quality["mean_box_iou"] > 0.95


@pytest.mark.parametrize(("answers", "message"), [
    ('{"1": [{"id": 1, "box": [5, 5, 2, 9]}]}', "entry 1 .id 1.: box .* not x1 < x2"),
    ('{"1": [{"id": 1, "box": [5, 5]}]}', "entry 1 .id 1.: box must be a list of 4 numbers"),
    ('{"1": [{"box": [1, 2, 3, 4]}]}', "entry 1: expected"),
    ('{"1": [{"id": 1, "box": [1, 2, 3, 4000]}]}', "outside the 160x120 frame"),
    ("[1, 2", "not valid JSON"),
    ('{"1": [{"id": 1, "box": [1, 2, 9, 9]}, {"id": 1, "box": [20, 20, 30, 30]}]}', "entry 2: id 1 has two boxes"),
    ('{"1": [{"id": 1, "box": "1234"}]}', 'box must be a list of 4 numbers .* got "1234"'),
    ('{"1": [{"id": 1, "box": [1, 2, 3, 4, 5]}]}', "box must be a list of 4 numbers"),
    ('{"1": [{"id": 1, "box": [1, NaN, 3, 4]}]}', "not finite"),
    ('{"1": [{"id": 1, "box": [1, 2, 3, Infinity]}]}', "not finite"),
    ('{"1": [{"id": 1, "box": [1, "2", 3, 4]}]}', "box must be a list of 4 numbers"),
    ('{"1": [{"id": 1, "box": [1, true, 3, 4]}]}', "box must be a list of 4 numbers"),
    ('{"1": [{"id": "1", "box": [1, 2, 3, 4]}]}', "id must be an integer"),
    ('{"1": [{"id": 1.5, "box": [1, 2, 3, 4]}]}', "id must be an integer"),
    ('{"1": [{"id": 1, "box": [1, 2, 3, 4], "mask": []}]}', "entry 1: expected"),
    ('{"1": [], "1": [{"id": 1, "box": [1, 2, 3, 4]}]}', "key '1' appears twice"),
    ('{"01": [], "1": [{"id": 1, "box": [1, 2, 3, 4]}]}', "answered twice"),
    ('{"one": []}', "a frame number"),
    ('{"1": {"id": 1, "box": [1, 2, 3, 4]}}', "expected a list of boxes"),
])
def test_malformed_answers_name_the_file_and_keep_the_labels(seq: Sequence, tmp_path: Path, answers: str,
                                                           message: str) -> None:
    queue = QueuePrompts(tmp_path / "queue")
    (tmp_path / "queue" / seq.name).mkdir(parents=True)
    (tmp_path / "queue" / seq.name / "answers.json").write_text(answers)
    annotator = SamQaAnnotator(GtMaskPredictor(seq), queue, QA)
    with pytest.raises(DataFormatError, match=f"answers.json.*{message}"):
        annotate_sequence(annotator, seq, tmp_path / "labels", {}, progress=False)


def test_manual_every_nth_frame_and_mixed_labels(seq: Sequence, tmp_path: Path) -> None:
    manual = annotate_sequence(ManualAnnotator(every=5), seq, tmp_path / "manual", {}, progress=False)
    assert manual.quality["labelled_frames"] == 8 and manual.quality["interventions"] == 8
    assert manual.quality["mean_box_iou"] == pytest.approx(1.0)
    assert (tmp_path / "manual" / "frames.txt").read_text().split() == [str(f) for f in range(1, 41, 5)]
    base = SamQaAnnotator(GtMaskPredictor(seq, {f: "merge" for f in range(2, 41)}, corrupt_points=True),
                          OraclePrompts(), {**QA, "recovery": False})
    mixed = annotate_sequence(MixedAnnotator(base, every=10), seq, tmp_path / "mixed", {}, progress=False)
    records = list(LabelStore(tmp_path / "mixed", {}).records())
    assert all(i.source == "manual" for f in (1, 11, 21, 31) for i in records[f - 1].instances)
    assert mixed.counts["interventions"] == 40  # 4 scheduled + 36 the base method asked for


def test_a_video_shorter_than_its_ground_truth_is_refused(tiny_rats: Path, tmp_path: Path) -> None:
    src = DatasetManifest.read(tiny_rats).sequences(tiny_rats, "train")[0].root
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    ini = bad / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=40", "seqLength=30"))
    with pytest.raises(DataFormatError, match=r"gt.txt.*(frame|30)"):
        annotate_sequence(ManualAnnotator(), Sequence(bad), tmp_path / "labels", {}, progress=False)
    assert not (tmp_path / "labels" / "labels.jsonl").exists()


def test_overlay_video_on_request(seq: Sequence, tmp_path: Path) -> None:
    from samqa_framework.data.video import VideoReader

    annotate_sequence(ManualAnnotator(every=2), seq, tmp_path, {}, progress=False, overlay=True, max_frames=10)
    video = VideoReader(tmp_path / "overlay.mp4")
    assert len(video) == 10 and (video.width, video.height) == (seq.info.width, seq.info.height)
    drawn, plain = video.read(0), seq.frames().read(0)
    assert np.abs(drawn.astype(int) - plain.astype(int)).max() > 100  # boxes drawn in saturated colours


def test_a_run_reads_its_store_once_and_decodes_no_stored_mask(seq: Sequence, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Export, costs and label quality come from one pass over the store; manual labels carry the ground truth's
    run lengths into the store, the exports and the mask IoU without decoding a mask."""
    from samqa_framework.data import rle

    passes: list[int] = []
    decoded: list[object] = []
    real_records, real_decode = LabelStore.records, rle.decode

    def records(store: LabelStore, corrected: bool = False):
        passes.append(1)
        return real_records(store, corrected)

    monkeypatch.setattr(LabelStore, "records", records)
    monkeypatch.setattr(rle, "decode", lambda r: decoded.append(r) or real_decode(r))
    result = annotate_sequence(ManualAnnotator(), seq, tmp_path / "labels", {}, progress=False)
    assert passes == [1, 1]  # the (empty) resume replay, then the one finishing pass
    assert decoded == []
    assert result.quality["mean_mask_iou"] == 1.0 and result.frames == seq.info.seq_length
    masks = dict(rle.iter_masks(tmp_path / "labels" / "masks.jsonl"))
    assert masks == dict(rle.iter_masks(seq.masks_path))  # ground truth's masks (every frame labelled)
