"""Annotation that overlaps work (``read_ahead``, ``encode_ahead``): the labels are byte for byte those of the inline
path, each frame is encoded at most once, and errors, interrupts, early stops and resumes behave as inline."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.prompts import OraclePrompts
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.samqa.annotator import SamQaAnnotator
from samqa_framework.api import compose
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.data.video import VideoReader
from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.models.sam.predictor import SamMaskPredictor
from samqa_framework.utils.errors import DataFormatError

# the tiny SAM's random masks fail the checks often: recovery, probing, refine and manual prompts all run
QA = {"overlap_thresh": 0.3, "size_ratio": [0.6, 1.5], "recovery": True, "recovery_grid": 3, "box_margin": 0.2,
      "refine_passes": 1, "recheck_missing": 5, "probe_lost": True,
      "cleanup": {"opening_radius": 1, "largest_component": True, "fill_holes": True}}
OUTPUTS = ("labels.jsonl", "labels.txt", "masks.jsonl", "label_quality.json")


@pytest.fixture(scope="module")
def sam() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)).eval()


class Interrupting(SamQaAnnotator):
    """Stops (as Ctrl-C would) or crashes when it reaches ``stop_at``."""

    stop_at = 0
    error: type[BaseException] = KeyboardInterrupt

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if frame == self.stop_at:
            raise self.error(frame)
        return super().step(frame, image)


def _samqa(sam: torch.nn.Module, cls: type[SamQaAnnotator] = SamQaAnnotator) -> SamQaAnnotator:
    return cls(SamMaskPredictor(sam), OraclePrompts(), QA, num_animals=2)


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("read-ahead", "encode-ahead"))]


def _inline(seq: Sequence, sam: torch.nn.Module, out: Path) -> dict[str, bytes]:
    annotate_sequence(_samqa(sam), seq, out, {"m": 1}, progress=False)
    return _files(out)


@pytest.mark.parametrize(("read_ahead", "encode_ahead"), [(4, False), (1, True), (4, True), (0, True)])
def test_overlapped_labels_are_byte_identical_to_the_inline_path(seq: Sequence, sam: torch.nn.Module, tmp_path: Path,
                                                                 read_ahead: int, encode_ahead: bool) -> None:
    inline = _inline(seq, sam, tmp_path / "inline")
    result = annotate_sequence(_samqa(sam), seq, tmp_path / "overlap", {"m": 1}, progress=False, read_ahead=read_ahead,
                               encode_ahead=encode_ahead)
    assert _files(tmp_path / "overlap") == inline
    assert result.counts["recoveries"] > 0 and result.counts["interventions"] > 1  # every branch of the loop ran
    assert not _workers()


def test_each_frame_is_encoded_once_whatever_probing_refine_recovery_and_manual_prompts_ask(
        seq: Sequence, sam: torch.nn.Module, tmp_path: Path) -> None:
    seen: list[bytes] = []
    handle = sam.image_encoder.register_forward_hook(
        lambda _m, args, _out: seen.append(hashlib.md5(args[0].cpu().numpy().tobytes()).digest()))
    try:
        for overlap in (False, True):
            seen.clear()
            annotator = _samqa(sam)
            result = annotate_sequence(annotator, seq, tmp_path / f"run{overlap}", {"m": 1}, progress=False,
                                       read_ahead=4 * overlap, encode_ahead=overlap)
            assert result.counts["recoveries"] > 0 and result.counts["interventions"] > 1
            assert len(seen) == len(set(seen)) <= result.frames  # at most one encoder pass per frame
            assert annotator.predictor.encoder_calls == len(seen)
    finally:
        handle.remove()


@pytest.fixture
def img1_seq(tmp_path_factory: pytest.TempPathFactory) -> Sequence:
    """The tiny rats with their frames as numbered JPEGs (a bad file stops decoding mid-video)."""
    root = tmp_path_factory.mktemp("data") / "rats-img1"
    cfg = compose("generate", ["data=synthetic_rats", "data.size=tiny", "data.video_format=img1"],
                  output_dir=root.parent)
    instantiate(cfg.data, _convert_="all").build(root)
    return DatasetManifest.read(root).sequences(root, "train")[0]


@pytest.mark.parametrize(("read_ahead", "encode_ahead"), [(0, False), (4, False), (4, True)])
def test_a_decode_error_mid_video_is_raised_in_the_main_thread_naming_the_file(
        img1_seq: Sequence, sam: torch.nn.Module, tmp_path: Path, read_ahead: int, encode_ahead: bool) -> None:
    seq = Sequence(shutil.copytree(img1_seq.root, tmp_path / "seq"))
    bad = sorted((seq.root / "img1").iterdir())[12]  # frame 13
    bad.write_bytes(b"\xff\xd8\xff not a JPEG body")
    with pytest.raises(DataFormatError) as err:
        annotate_sequence(_samqa(sam), seq, tmp_path / "labels", {"m": 1}, progress=False, read_ahead=read_ahead,
                          encode_ahead=encode_ahead)
    assert err.value.path == str(bad) and "frame 13" in str(err.value)
    assert len((tmp_path / "labels" / "labels.jsonl").read_text().splitlines()) == 12  # frames before it kept
    assert not _workers()


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_stops_the_threads_keeps_the_frames_and_the_run_resumes(
        seq: Sequence, sam: torch.nn.Module, tmp_path: Path, error: type[BaseException]) -> None:
    inline = _inline(seq, sam, tmp_path / "inline")
    annotator = _samqa(sam, Interrupting)
    annotator.stop_at, annotator.error = 17, error
    with pytest.raises(error):
        annotate_sequence(annotator, seq, tmp_path / "run", {"m": 1}, progress=False, read_ahead=4, encode_ahead=True)
    assert not _workers()
    stored = (tmp_path / "run" / "labels.jsonl").read_text().splitlines()
    assert len(stored) == 16 and stored == inline["labels.jsonl"].decode().splitlines()[:16]
    annotate_sequence(_samqa(sam), seq, tmp_path / "run", {"m": 1}, progress=False, read_ahead=4, encode_ahead=True)
    assert _files(tmp_path / "run") == inline  # resumed at frame 17, overlapped: the uninterrupted labels


def test_an_early_stop_decodes_no_frame_beyond_it(seq: Sequence, sam: torch.nn.Module, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    original = VideoReader.iter_range

    def counted(self: VideoReader, start: int = 0, stop: int | None = None, step: int = 1):
        for i, frame in enumerate(original(self, start, stop, step), start=start):
            decoded.append(i)
            yield frame

    monkeypatch.setattr(VideoReader, "iter_range", counted)
    result = annotate_sequence(_samqa(sam), seq, tmp_path / "labels", {"m": 1}, max_frames=9, progress=False,
                               read_ahead=4, encode_ahead=True)
    assert result.frames == 9 and decoded == list(range(9)) and not _workers()


def test_read_ahead_is_checked(seq: Sequence, sam: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="read_ahead"):
        annotate_sequence(_samqa(sam), seq, tmp_path / "labels", {"m": 1}, progress=False, read_ahead=-1)
