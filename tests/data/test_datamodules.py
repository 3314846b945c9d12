from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from samqa_framework.data import rle
from samqa_framework.data.datamodules import BoxPromptDataModule, FramesDataModule, jitter_boxes
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.models.sam.inputs import normalize_images
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import CONFIG_DIR

SIZE = 64


@pytest.fixture(scope="module")
def tiny_mice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic mice: 4 animals, some hidden in the tunnel (flag 0 rows)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", overrides=["data=synthetic_mice", "data.size=tiny"])
    GlobalHydra.instance().clear()
    root = tmp_path_factory.mktemp("data") / "mice"
    instantiate(cfg.data, _convert_="all").build(root)
    return root


def test_box_prompt_batches_have_sam_shapes_and_padding(tiny_mice: Path) -> None:
    dm = BoxPromptDataModule(str(tiny_mice), image_size=SIZE, every=2, val_every=5, batch_size=3)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    b, k = batch["valid"].shape
    assert batch["image"].shape == (b, 3, SIZE, SIZE) and batch["image"].dtype == torch.uint8
    assert batch["input_size"].tolist() == [[48, 64]] * b  # 160x120 -> longest side 64
    assert batch["original_size"].tolist() == [[120, 160]] * b
    assert batch["boxes"].shape == (b, k, 4) and batch["masks"].shape == (b, k, SIZE, SIZE)
    assert 1 <= k <= 4
    assert batch["image"][:, :, 48:].sum() == 0 and batch["masks"][:, :, 48:].sum() == 0  # padded like SAM
    for i in range(b):  # every valid prompt has a non-empty target; padding prompts are empty
        areas = batch["masks"][i].flatten(1).sum(1)
        assert (areas[batch["valid"][i]] > 0).all() and (areas[~batch["valid"][i]] == 0).all()
    x = normalize_images(batch["image"], batch["input_size"], torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 2, 2]))
    assert x[:, :, 48:].abs().sum() == 0 and x[:, :, :48].abs().sum() > 0


def test_prompts_are_the_flagged_gt_rows_with_exact_masks(tiny_mice: Path) -> None:
    dm = BoxPromptDataModule(str(tiny_mice), image_size=SIZE, val_every=1)
    dm.setup("validate")
    seqs = DatasetManifest.read(tiny_mice).sequences(tiny_mice, "eval")
    gts = [s.gt() for s in seqs]
    masks = [dict(rle.iter_masks(s.masks_path)) for s in seqs]
    for i, (si, frame) in enumerate(dm.val_set.refs):
        rows = gts[si].rows_of(frame + 1)
        flagged = rows.select(rows.conf > 0)
        s = dm.val_set[i]
        assert s["ids"].tolist() == flagged.track_id.tolist()
        np.testing.assert_allclose(s["boxes_orig"].numpy(), flagged.xyxy, atol=1e-4)
        for k, tid in enumerate(flagged.track_id):
            assert torch.equal(s["masks_orig"][k], torch.from_numpy(rle.decode(masks[si][frame + 1][int(tid)])))
    labelled = sum(1 for g, seq in zip(gts, seqs, strict=True) for f in range(1, seq.info.seq_length + 1)
                   if (g.rows_of(f).conf > 0).any())
    assert len(dm.val_set) == labelled > 0
    prompts = sum(len(lab["ids"]) for lab in dm.val_set.labels)
    hidden = sum(int((g.conf == 0).sum()) for g in gts)
    assert hidden > 0 and prompts == sum(len(g) for g in gts) - hidden  # flag-0 rows (in the tunnel) are no prompt


def test_training_boxes_follow_flips_and_stay_inside_the_image(tiny_mice: Path) -> None:
    dm = BoxPromptDataModule(str(tiny_mice), image_size=SIZE, hflip=True, vflip=True, box_jitter=0.0)
    dm.setup("fit")
    torch.manual_seed(0)
    for i in range(12):
        s = dm.train_set[i]
        h, w = s["input_size"].tolist()
        for box, mask in zip(s["boxes"], s["masks"], strict=True):
            ys, xs = np.nonzero(mask.numpy())
            # the mask at input resolution sits in its (flipped) box, to within resampling
            assert xs.min() >= box[0] - 1.5 and xs.max() + 1 <= box[2] + 1.5
            assert ys.min() >= box[1] - 1.5 and ys.max() + 1 <= box[3] + 1.5
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h

    jittered = BoxPromptDataModule(str(tiny_mice), image_size=SIZE, hflip=False, vflip=False, box_jitter=2.0,
                                   box_jitter_max_px=500)
    jittered.setup("fit")
    moved = []
    for i in range(12):
        s = jittered.train_set[i]
        h, w = s["input_size"].tolist()
        b = s["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        exact = torch.from_numpy(jittered.train_set.labels[i]["boxes"]) * (w / 160)
        moved.append(float((b - exact).abs().max()))
    assert max(moved) > 5  # the jitter really moves the prompts


def test_jitter_boxes_bounds_and_scale() -> None:
    rng = np.random.default_rng(0)
    boxes = np.array([[10.0, 20, 50, 40], [0, 0, 3, 2], [150, 110, 160, 120]] * 200)
    out = jitter_boxes(boxes, rng, frac=0.5, max_px=1000, width=160, height=120)
    assert (out[:, [0, 2]] >= 0).all() and (out[:, [0, 2]] <= 160).all()
    assert (out[:, [1, 3]] >= 0).all() and (out[:, [1, 3]] <= 120).all()
    assert (out[:, 2] - out[:, 0] >= 1 - 1e-9).all() and (out[:, 3] - out[:, 1] >= 1 - 1e-9).all()
    # box 40 x 20 px: edges move by N(0, 0.1 * side) = 4 px in x, 2 px in y
    shift = jitter_boxes(boxes[:1].repeat(4000, 0), rng, frac=0.1, max_px=30, width=160, height=120) - boxes[:1]
    np.testing.assert_allclose(shift.std(axis=0), [4, 2, 4, 2], rtol=0.1)
    clipped = jitter_boxes(boxes[:1].repeat(500, 0), rng, frac=0.1, max_px=3, width=160, height=120) - boxes[:1]
    assert np.abs(clipped).max() <= 3 + 1e-9 and np.abs(clipped[:, 0]).max() == 3
    np.testing.assert_array_equal(jitter_boxes(boxes, None, 0.5, 10, 160, 120), boxes)


def test_frames_datamodule_subsamples_and_splits(tiny_mice: Path) -> None:
    dm = FramesDataModule(str(tiny_mice), image_size=SIZE, every=3, val_every=4, batch_size=5)
    dm.setup("fit")
    assert len(dm.train_set) == len(range(0, 40, 3)) and len(dm.val_set) == 2 * len(range(0, 20, 4))
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (5, 3, SIZE, SIZE) and batch["variant"].max() < len(dm.variants)
    val = next(iter(dm.val_dataloader()))
    assert val["variant"].tolist() == [0] * len(val["variant"])  # no augmentation in validation
    assert dm.frames_identity("train") != dm.frames_identity("val")


def test_bad_subsampling_is_a_config_error(tiny_mice: Path) -> None:
    with pytest.raises(ConfigError, match=r"'every'"):  # under a config: stage.datamodule.every
        BoxPromptDataModule(str(tiny_mice), image_size=SIZE, every=0)


def test_an_unlabelled_video_distils_and_fine_tuning_names_what_is_missing(tmp_path: Path, tiny_mice: Path) -> None:
    import shutil

    from samqa_framework.data.video_import import VideoImporter
    from samqa_framework.utils.errors import DataFormatError
    from tests.data.test_video_import import write_video

    write_video(tmp_path / "clip.mp4", 12)
    root = tmp_path / "clip"
    VideoImporter(str(tmp_path / "clip.mp4"), num_animals=2, splits={"train": [0, 8], "eval": [8, None]}).build(root)
    dm = FramesDataModule(str(root), image_size=SIZE, every=2, val_every=2, batch_size=2)  # frames need no labels
    dm.setup("fit")
    assert len(dm.train_set) == 4 and len(dm.val_set) == 2 and next(iter(dm.train_dataloader()))["image"].shape[0] == 2
    with pytest.raises(DataFormatError, match=r"no labelled .* without ground truth: clip-train \(.*gt\.txt\)"):
        BoxPromptDataModule(str(root), image_size=SIZE).setup("fit")
    # a labelled training sequence beside an unlabelled one: fine-tuning uses the labelled one
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_mice, mixed, symlinks=True)
    shutil.copytree(root / "clip-train", mixed / "clip-train")
    manifest = DatasetManifest.read(mixed)
    DatasetManifest(manifest.name, manifest.species, 4, [*manifest.train, "clip-train"], manifest.eval).write(mixed)
    dm = BoxPromptDataModule(str(mixed), image_size=SIZE)
    dm.setup("fit")
    assert {dm.train_set.sequences[s].name for s, _ in dm.train_set.refs} == set(manifest.train)


def test_box_only_labels_come_with_their_exact_boxes_and_no_mask(tiny_rats_boxes: Path) -> None:
    dm = BoxPromptDataModule(str(tiny_rats_boxes), image_size=SIZE, every=4, val_every=5, batch_size=4,
                             hflip=False, vflip=False, box_jitter=0.5, box_jitter_max_px=50)
    dm.setup("fit")  # before box supervision: "fine-tuning needs instance masks (gt/masks.jsonl)"
    coverage = dm.train_set.coverage
    assert coverage.animals == 2 * 10 and coverage.box_only == coverage.animals  # 2 rats x 10 frames, no mask
    assert coverage.first_box_only.startswith("synthetic_rats-train frame 1 id ")
    batch = next(iter(dm.train_dataloader()))
    assert not batch["has_mask"].any() and batch["masks"].sum() == 0 and batch["valid"].all()
    scale = SIZE / 160
    for i, index in enumerate(batch["index"].tolist()):
        exact = torch.from_numpy(dm.train_set.labels[index]["boxes"]) * scale
        assert torch.allclose(batch["target_boxes"][i], exact, atol=1e-4)  # what box supervision fits: exact
    assert (batch["boxes"] - batch["target_boxes"]).abs().max() > 1  # while the prompts are jittered
    val = dm.val_dataloader().collate_fn([dm.val_set[0]])
    assert not val["has_mask"].any() and val["masks_orig"][0].shape == (2, 120, 160)
    assert torch.allclose(val["target_boxes"][0], val["boxes_orig"][0] * scale, atol=1e-4)


def test_animals_without_a_mask_are_marked_per_animal(tiny_mice: Path, tmp_path: Path) -> None:
    """A frame whose mask record lacks one animal (a box a person drew), and one without a record at all."""
    import json
    import shutil

    root = tmp_path / "mice"
    shutil.copytree(tiny_mice, root)
    seq = DatasetManifest.read(root).sequences(root, "train")[0]
    gt = seq.gt()
    frame1 = gt.rows_of(1)
    flagged = frame1.track_id[frame1.conf > 0]
    assert len(flagged) >= 2
    dropped = int(flagged[0])
    lines = []
    for line in seq.masks_path.read_text().splitlines():
        record = json.loads(line)
        if record["frame"] == 1:
            record["instances"] = [i for i in record["instances"] if i["id"] != dropped]
        if record["frame"] != 3:
            lines.append(json.dumps(record))
    seq.masks_path.write_text("\n".join(lines) + "\n")
    dm = BoxPromptDataModule(str(root), image_size=SIZE, every=1, hflip=False, vflip=False)
    dm.setup("fit")
    by_frame = {frame: i for i, (si, frame) in enumerate(dm.train_set.refs) if si == 0}
    first = dm.train_set[by_frame[0]]
    assert first["has_mask"].tolist() == [int(t) != dropped for t in first["ids"]]
    assert first["masks"][0].sum() == 0 and (first["masks"][1:].flatten(1).sum(1) > 0).all()
    assert not dm.train_set[by_frame[2]]["has_mask"].any()  # no record for frame 3
    assert dm.train_set[by_frame[1]]["has_mask"].all()
    coverage = dm.train_set.coverage
    assert coverage.first_box_only == (f"{seq.name} frame 1 id {dropped}, not in "
                                       f"{root / seq.name / 'gt' / 'masks.jsonl'}")
    assert coverage.box_only == 1 + int((gt.rows_of(3).conf > 0).sum())


def test_the_sleap_import_trains_on_its_boxes(sleap_clip: Path, tmp_path: Path) -> None:
    """The real two-fly SLEAP clip (keypoints, no masks): both training data modules read its labelled frames."""
    from samqa_framework.data.importers import SleapImporter
    from samqa_framework.data.segmentation_datamodule import SegmentationDataModule

    root = tmp_path / "flies"
    SleapImporter(str(sleap_clip / "clip.slp"), name="flies", species="fly",
                  splits={"train": [0, 750], "eval": [750, 1500]}).build(root)
    dm = BoxPromptDataModule(str(root), image_size=SIZE, every=50, val_every=50, batch_size=2)
    dm.setup("fit")  # before box supervision: "fine-tuning needs instance masks (gt/masks.jsonl)"
    assert len(dm.train_set) == len(dm.val_set) == 15
    assert dm.train_set.coverage.box_only == dm.train_set.coverage.animals == 30  # two flies a frame
    batch = next(iter(dm.train_dataloader()))
    assert not batch["has_mask"].any() and (batch["target_boxes"][..., 2:] > batch["target_boxes"][..., :2]).all()
    seg = SegmentationDataModule(str(root), image_size=SIZE, num_labelled=20, val_every=50)
    seg.setup("fit")
    assert len(seg.train_set) == 20 and not any(lab["has_mask"] for lab in seg.train_set.labels)
