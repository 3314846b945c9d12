"""The watershed annotator: identities carried by mask IoU, labels as good as its heatmap, resumable, configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy import ndimage as ndi

from samqa_framework.annotate.base import FrameLabels, Instance
from samqa_framework.annotate.manual import MixedAnnotator
from samqa_framework.annotate.runner import annotate_sequence
from samqa_framework.annotate.store import LabelStore
from samqa_framework.annotate.watershed.annotator import WatershedAnnotator
from samqa_framework.annotate.watershed.postprocess import WatershedParams
from samqa_framework.data.sequence import DatasetManifest, Sequence
from samqa_framework.models.segmentation.checkpoint import export_segmentation
from samqa_framework.models.segmentation.predictor import SegmentationPredictor
from samqa_framework.utils.errors import ConfigError, UntrustedFileError
from tests.annotate.helpers import GtMaskPredictor
from tests.annotate.test_runner import Crash, _records
from tests.models.segmentation.test_segmentation_training import TINY_UNET

SEG_SIZE = 64


def write_tiny_unet(path: Path, seed: int = 0, model: dict | None = None) -> Path:
    """A random-weight U-Net exported as `samqa-train stage=segmentation` exports one (state dict + sidecar)."""
    torch.manual_seed(seed)
    model = model or TINY_UNET
    return export_segmentation(instantiate(model), path, (SEG_SIZE, SEG_SIZE),
                               meta={"stage": "segmentation", "model": model})


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_unet(tmp_path_factory.mktemp("seg") / "seg_unet.pt")


def num_animals(seq: Sequence) -> int:
    return DatasetManifest.read(seq.root.parent).num_animals


class GtHeatmapPredictor(GtMaskPredictor):
    """An ideal segmentation net: positive on the ground-truth animals, peaking at each one's core (its distance
    from its own mask's edge), so touching animals meet in a valley, as a trained net's logits do."""

    def heatmap(self, image: np.ndarray) -> np.ndarray:
        _, masks = self._masks(image)
        heat = np.full(image.shape[:2], -4.0, np.float32)
        for m in masks:
            depth = ndi.distance_transform_edt(m)
            heat[m] = np.maximum(heat[m], 1.0 + 3.0 * depth[m] / max(depth.max(), 1.0))
        return heat


class BlobPredictor:
    """Heatmaps of disks whose centres and radii are given per frame (the frame number is pixel (0, 0)'s value)."""

    def __init__(self, disks: dict[int, list[tuple[float, float, float]]], shape: tuple[int, int] = (80, 120)):
        self.disks, self.shape = disks, shape

    def frame(self, k: int) -> np.ndarray:
        image = np.zeros((*self.shape, 3), np.uint8)
        image[0, 0, 0] = k
        return image

    def heatmap(self, image: np.ndarray) -> np.ndarray:
        rows, cols = np.mgrid[:self.shape[0], :self.shape[1]]
        heat = np.full(self.shape, -3.0, np.float32)
        for r, c, radius in self.disks[int(image[0, 0, 0])]:
            heat = np.maximum(heat, 3.0 * (1.0 - np.hypot(rows - r, cols - c) / radius))
        return heat


def run_frames(annotator: WatershedAnnotator, predictor: BlobPredictor) -> list[FrameLabels]:
    out = []
    for k in sorted(predictor.disks):
        labels = annotator.step(k, predictor.frame(k))
        annotator.commit(labels)
        out.append(labels)
    return out


def centre_of(labels: FrameLabels, track_id: int) -> np.ndarray:
    return np.argwhere(labels.by_id()[track_id].mask).mean(0)


def test_identities_follow_the_animals_not_the_mask_order() -> None:
    # animal A (left) shrinks while B (right) grows: the split's largest-first order swaps at frame 3
    radii = {1: (14, 8), 2: (12, 10), 3: (10, 12), 4: (8, 14)}
    disks = {k: [(40, 30 + 2 * k, ra), (40, 85 + k, rb)] for k, (ra, rb) in radii.items()}
    predictor = BlobPredictor(disks)
    frames = run_frames(WatershedAnnotator(predictor, {"refine": "none"}, num_animals=2), predictor)
    assert [sorted(f.by_id()) for f in frames] == [[1, 2]] * 4
    left = next(i for i in (1, 2) if centre_of(frames[0], i)[1] < 60)
    for labels in frames:
        assert centre_of(labels, left)[1] < 60 < centre_of(labels, 3 - left)[1]
        assert labels.prompts == labels.interventions == 0 and labels.labelled
        for inst in labels.instances:
            assert inst.source == "auto" and 0.5 < inst.score < 1.0
            xy = np.argwhere(inst.mask)[:, ::-1]
            assert np.array_equal(inst.box, [*xy.min(0), *(xy.max(0) + 1)])


def test_a_mask_that_overlaps_no_previous_one_gets_a_new_identity() -> None:
    disks = {1: [(40, 30, 10)], 2: [(40, 30, 10), (40, 95, 10)], 3: [(40, 30, 10), (40, 95, 10)],
             4: [(40, 95, 10)], 5: [(40, 30, 10), (40, 95, 10)]}
    predictor = BlobPredictor(disks)
    params = {"refine": "none", "recover_seeds": False}  # one disk alone stays one animal
    frames = run_frames(WatershedAnnotator(predictor, params, num_animals=2, memory=0), predictor)
    assert [sorted(f.by_id()) for f in frames] == [[1], [1, 2], [1, 2], [2], [2, 3]]
    # within `memory` frames the animal missed at frame 4 takes its identity back
    frames = run_frames(WatershedAnnotator(predictor, params, num_animals=2, memory=1), predictor)
    assert [sorted(f.by_id()) for f in frames] == [[1], [1, 2], [1, 2], [2], [1, 2]]
    assert centre_of(frames[-1], 1)[1] < 60 < centre_of(frames[-1], 2)[1]
    # a jump with no overlap: above min_iou it is another animal
    jump = BlobPredictor({1: [(40, 30, 10)], 2: [(40, 45, 10)]})
    assert [sorted(f.by_id()) for f in run_frames(WatershedAnnotator(jump, num_animals=1), jump)] == [[1], [1]]
    strict = WatershedAnnotator(jump, num_animals=1, min_iou=0.5)
    assert [sorted(f.by_id()) for f in run_frames(strict, jump)] == [[1], [2]]


def test_lost_identities_are_rebuilt_from_the_committed_frames() -> None:
    """On resume the stored frames are only committed: the next frame's identities equal an uninterrupted run's."""
    disks = {1: [(40, 30, 10), (40, 95, 10)], 2: [(40, 95, 10)], 3: [(40, 96, 10)], 4: [(40, 31, 10), (40, 97, 10)]}
    predictor = BlobPredictor(disks)
    params = {"refine": "none", "recover_seeds": False}
    full = run_frames(WatershedAnnotator(predictor, params, num_animals=2, memory=5), predictor)
    assert [sorted(f.by_id()) for f in full] == [[1, 2], [2], [2], [1, 2]]
    resumed = WatershedAnnotator(predictor, params, num_animals=2, memory=5)
    for labels in full[:3]:
        resumed.commit(labels)
    assert resumed.step(4, predictor.frame(4)).by_id().keys() == full[3].by_id().keys()
    assert set(resumed.lost) == {1} and resumed.next_id == 3
    expired = WatershedAnnotator(predictor, params, num_animals=2, memory=1)  # lost at frame 1, gone by frame 3
    assert [sorted(f.by_id()) for f in run_frames(expired, predictor)] == [[1, 2], [2], [2], [2, 3]]


def test_identities_carry_on_from_box_only_labels() -> None:
    """A person's box without a mask (e.g. a mixed run's manual frame on box-only data) counts as its filled box."""
    predictor = BlobPredictor({2: [(40, 30, 10), (40, 90, 10)]})
    annotator = WatershedAnnotator(predictor, {"refine": "none"}, num_animals=2)
    annotator.commit(FrameLabels(1, [Instance(7, [80, 30, 100, 50], source="manual"),
                                     Instance(4, [20, 30, 40, 50], source="manual")], interventions=1))
    labels = annotator.step(2, predictor.frame(2))
    assert centre_of(labels, 4)[1] < 60 < centre_of(labels, 7)[1]


def test_ground_truth_heatmaps_give_good_labels_and_no_identity_switch(seq: Sequence, tmp_path: Path) -> None:
    annotator = WatershedAnnotator(GtHeatmapPredictor(seq), WatershedParams(refine="gmm"), name="watershed_gt")
    result = annotate_sequence(annotator, seq, tmp_path / "labels", {}, progress=False,
                               num_animals=num_animals(seq))
    q = result.quality
    assert q["frames"] == q["labelled_frames"] == seq.info.seq_length
    assert q["mean_box_iou"] > 0.85 and q["mean_mask_iou"] > 0.85, q
    assert q["id_switches"] == 0 and q["recall"] > 0.95 and q["precision"] > 0.95, q
    assert q["interventions"] == q["prompts"] == 0
    assert json.loads((tmp_path / "labels" / "label_quality.json").read_text())["method"] == "watershed_gt"


class CrashingWatershed(WatershedAnnotator):
    """Dies (as a killed process would) when it reaches ``crash_at`` (tests/annotate/test_runner.py's pattern)."""

    crash_at = 0

    def step(self, frame: int, image: np.ndarray) -> FrameLabels:
        if frame == self.crash_at:
            raise Crash(frame)
        return super().step(frame, image)


def test_a_unet_checkpoint_labels_every_frame_and_a_crash_resumes_to_the_same_labels(
        seq: Sequence, tiny_unet: Path, tmp_path: Path) -> None:
    n, frames = num_animals(seq), 24  # a prefix: the random net's near-full foreground makes the GMM slow
    full = WatershedAnnotator.from_checkpoint(tiny_unet, "unet")
    assert full.name == "watershed_unet" and isinstance(full.predictor, SegmentationPredictor)
    result = annotate_sequence(full, seq, tmp_path / "full", {"m": 1}, max_frames=frames, progress=False,
                               num_animals=n)
    records = list(LabelStore(tmp_path / "full", {"m": 1}).records())
    assert result.frames == len(records) == frames
    assert result.counts == {"prompts": 0, "interventions": 0, "recoveries": 0}
    shape = (seq.info.height, seq.info.width)
    assert sum(len(r.instances) for r in records) > 0  # random weights still mark some foreground
    for labels in records:
        assert len(labels.instances) <= n and len({i.track_id for i in labels.instances}) == len(labels.instances)
        assert all(i.mask.shape == shape and i.mask.any() and 0 <= i.score <= 1 for i in labels.instances)
    for crash_at in (2, 13):
        out = tmp_path / f"crash{crash_at}"
        crashing = CrashingWatershed(SegmentationPredictor.load(tiny_unet))
        crashing.crash_at = crash_at
        with pytest.raises(Crash):
            annotate_sequence(crashing, seq, out, {"m": 1}, max_frames=frames, progress=False, num_animals=n)
        assert len(_records(out)) == crash_at - 1
        resumed = WatershedAnnotator.from_checkpoint(tiny_unet, "unet")
        again = annotate_sequence(resumed, seq, out, {"m": 1}, max_frames=frames, progress=False, num_animals=n)
        assert _records(out) == _records(tmp_path / "full") and again.frames == frames
        assert (out / "labels.txt").read_text() == (tmp_path / "full" / "labels.txt").read_text()


def test_checkpoint_errors_name_the_key_and_the_command(tiny_unet: Path, tmp_path: Path) -> None:
    # the arguments are named; a config names them under its node (tests/test_configs.py, tests/utils/test_hydra.py)
    with pytest.raises(ConfigError, match=r"'checkpoint'.*samqa-train stage=segmentation model=deeplabv3"):
        WatershedAnnotator.from_checkpoint(None, "deeplabv3")
    with pytest.raises(ConfigError, match=r"'checkpoint'.*not found: .*nope\.pt"):
        WatershedAnnotator.from_checkpoint(tmp_path / "nope.pt", "unet")
    with pytest.raises(ConfigError, match=r"'checkpoint'.*holds a Unet, not the deeplabv3"):
        WatershedAnnotator.from_checkpoint(tiny_unet, "deeplabv3")
    with pytest.raises(ConfigError, match=r"'net'.*no model config 'segformer'"):
        WatershedAnnotator.from_checkpoint(tiny_unet, "segformer")
    with pytest.raises(ConfigError, match=r"'postprocess\.refine'"):
        WatershedAnnotator(BlobPredictor({}), {"refine": "spectral"})


def test_a_sidecar_naming_a_class_is_refused_before_anything_runs(tiny_unet: Path, tmp_path: Path) -> None:
    """The sidecar's config is data: compared with conf/model/unet.yaml, never instantiated."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "seg_unet.pt"
    shutil.copy(tiny_unet, path)
    info = json.loads(Path(f"{tiny_unet}.json").read_text())
    info["meta"]["model"]["aux_params"] = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    Path(f"{path}.json").write_text(json.dumps(info))
    with pytest.raises(UntrustedFileError, match=r"seg_unet\.pt\.json: meta\.model\.aux_params.*trust_checkpoint"):
        WatershedAnnotator.from_checkpoint(path, "unet")
    assert not marker.exists()
    assert isinstance(WatershedAnnotator.from_checkpoint(tiny_unet, "unet").predictor, SegmentationPredictor)


@pytest.mark.parametrize(("option", "refine"), [("watershed_unet", "gmm"), ("watershed_deeplabv3", "gmm"),
                                                ("watershed_dinov2", "kmeans")])
def test_configs_follow_the_papers_refinement(compose_cfg, option: str, refine: str) -> None:
    cfg = compose_cfg("annotate", [f"annotator={option}"])
    assert cfg.annotator.postprocess.refine == refine and cfg.annotator.checkpoint is None
    assert cfg.annotator.name == ("watershed_dinov2" if option == "watershed_dinov2" else option)
    assert OmegaConf.to_container(cfg.annotator.postprocess)["_target_"].endswith("WatershedParams")


def test_mixed_config_puts_manual_labels_on_every_15th_frame(compose_cfg, seq: Sequence, tiny_unet: Path,
                                                             tmp_path: Path) -> None:
    cfg = compose_cfg("annotate", ["annotator=watershed_unet_manual", f"annotator.base.checkpoint={tiny_unet}"])
    annotator = instantiate(cfg.annotator, _convert_="all")
    assert isinstance(annotator, MixedAnnotator) and isinstance(annotator.base, WatershedAnnotator)
    assert annotator.name == "watershed_unet+manual15"
    result = annotate_sequence(annotator, seq, tmp_path / "mixed", {}, progress=False, num_animals=num_animals(seq))
    records = list(LabelStore(tmp_path / "mixed", {}).records())
    manual = [r.frame for r in records if r.interventions]
    assert manual == [1, 16, 31] and result.counts["interventions"] == 3
    assert all(i.source == "manual" for f in manual for i in records[f - 1].instances)
    assert all(i.source == "auto" for r in records if not r.interventions for i in r.instances)
