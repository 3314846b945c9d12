"""Fault injection across every command: bad input, damaged files, a user's folders in the way and files that would
run code. Each case runs the task as its app does (``run_task``: one ``error: ...`` line, exit status 1) and checks
that the line names the file (and line) or the config key at fault, that nothing outside the run's folder changed
(the inputs, the user's folders: a snapshot before and after) and that no marker file was written (the malicious
checkpoints, yamls and sidecars would write one if anything in them ran)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from hydra.utils import instantiate
from ultralytics.utils import ROOT as YOLO_ROOT

from samqa_framework.models.segmentation.checkpoint import export_segmentation
from tests.faults.conftest import compose_in, run_as_app, snapshot
from tests.utils.helpers_untrusted import WritesMarker, write_malicious_checkpoint

TRAIN, EVAL1, EVAL2 = "synthetic_rats-train", "synthetic_rats-eval1", "synthetic_rats-eval2"
MARKER = "MARKER"  # in the case folder: any code that ran from a file would create it


@dataclass(frozen=True)
class Case:
    """``setup`` writes the bad input into the case folder ``d`` (inputs in ``d/in``; the run is ``d/run``) and returns
    the task's overrides; the error line must match ``names`` (``{d}``: the case folder)."""

    name: str
    task: str
    setup: Callable[[Path], list[str]]
    names: str


def _data(d: Path) -> Path:
    return d / "in" / "data"


def _append(path: Path, data: bytes) -> Path:
    with open(path, "ab") as fh:
        fh.write(data)
    return path


def _replace(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
    return path


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


# ------------------------------------------------------------------------------------------------ evaluate


def ev(change: Callable[[Path], object] | None = None, *extra: str) -> Callable[[Path], list[str]]:
    """samqa-evaluate of the world's predictions against its data set, after ``change(d)``."""

    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        return [f"gt_dir={_data(d)}", f"pred_dir={d / 'in' / 'pred'}", *(x.replace("{d}", str(d)) for x in extra)]

    return setup


def _pred(d: Path, seq: str = EVAL1) -> Path:
    return d / "in" / "pred" / f"{seq}.txt"


def _gt(d: Path, seq: str = EVAL1) -> Path:
    return _data(d) / seq / "gt" / "gt.txt"


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


EVALUATE = [
    Case("pred_not_utf8", "evaluate", ev(lambda d: _append(_pred(d), b"2,9,1,1,5,5,1,1,\xff\n")),
         r"{d}/in/pred/synthetic_rats-eval1\.txt:\d+: not UTF-8"),
    Case("pred_binary_file", "evaluate", ev(lambda d: _write(_pred(d), b"\x1f\x8b\x08\x00\x00\xff\xfe" * 9)),
         r"synthetic_rats-eval1\.txt:1: not UTF-8"),
    Case("pred_wrong_columns", "evaluate", ev(lambda d: _append(_pred(d), b"3,1,2\n")),
         r"synthetic_rats-eval1\.txt:\d+: expected 6 to 10 columns"),
    Case("pred_nan", "evaluate", ev(lambda d: _append(_pred(d), b"3,7,nan,1,5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: NaN"),
    Case("pred_infinite", "evaluate", ev(lambda d: _append(_pred(d), b"3,7,1,1,inf,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: NaN or infinite"),
    Case("pred_negative_size", "evaluate", ev(lambda d: _append(_pred(d), b"3,7,1,1,-5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: box width and height must be positive"),
    Case("pred_beyond_sequence", "evaluate", ev(lambda d: _append(_pred(d), b"999,7,1,1,5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: frame 999 is beyond the sequence's 20 frames"),
    Case("pred_frame_zero", "evaluate", ev(lambda d: _append(_pred(d), b"0,7,1,1,5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: frame must be an integer >= 1"),
    Case("pred_duplicate_id", "evaluate",
         ev(lambda d: _append(_pred(d), _pred(d).read_bytes().splitlines()[0] + b"\n")),
         r"synthetic_rats-eval1\.txt:\d+: frame 1 has id \d+ twice"),
    Case("pred_not_a_number", "evaluate", ev(lambda d: _append(_pred(d), b"3,7,one,1,5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: not a number"),
    Case("pred_fractional_id", "evaluate", ev(lambda d: _append(_pred(d), b"3,7.5,1,1,5,5,1,1,1\n")),
         r"synthetic_rats-eval1\.txt:\d+: id must be an integer"),
    Case("pred_missing", "evaluate", ev(lambda d: _pred(d, EVAL2).unlink()),
         r"{d}/in/pred/synthetic_rats-eval2\.txt: prediction file for sequence synthetic_rats-eval2 not found"),
    Case("pred_unknown_sequence", "evaluate", ev(lambda d: shutil.copy(_pred(d), _pred(d, "ghost"))),
         r"{d}/in/pred/ghost\.txt: prediction for an unknown sequence"),
    Case("gt_not_utf8", "evaluate", ev(lambda d: _append(_gt(d), b"\xfe\xff\n")),
         r"{d}/in/data/synthetic_rats-eval1/gt/gt\.txt:\d+: not UTF-8"),
    Case("gt_cut_mid_row", "evaluate", ev(lambda d: _append(_gt(d), b"20,1,10,1")),
         r"synthetic_rats-eval1/gt/gt\.txt:\d+: expected 6 to 10 columns"),
    Case("gt_columns_change", "evaluate", ev(lambda d: _append(_gt(d), b"20,9,10,10,5,5\n")),
         r"synthetic_rats-eval1/gt/gt\.txt:\d+: expected 9 columns like the first row"),
    Case("seqinfo_length_not_a_number", "evaluate",
         ev(lambda d: _replace(_data(d) / EVAL1 / "seqinfo.ini", "seqLength=20", "seqLength=twenty")),
         r"synthetic_rats-eval1/seqinfo\.ini: bad seqinfo\.ini"),
    Case("seqinfo_name_is_a_path", "evaluate",
         ev(lambda d: _replace(_data(d) / EVAL1 / "seqinfo.ini", f"name={EVAL1}", "name=../../x")),
         r"synthetic_rats-eval1/seqinfo\.ini:\d+: .*sequence name"),
    Case("sequences_a_path", "evaluate", ev(None, "sequences=[../../x]"), r"config key 'sequences'"),
    Case("sequences_unknown", "evaluate", ev(None, "sequences=[nope]"), r"{d}/in/data/nope: sequence nope not found"),
    Case("gt_dir_missing", "evaluate", ev(None, "gt_dir={d}/in/nothing"), r"{d}/in/nothing: ground-truth folder"),
    Case("gt_dir_a_file", "evaluate", ev(lambda d: _write(d / "in" / "afile", "x"), "gt_dir={d}/in/afile"),
         r"{d}/in/afile: ground-truth folder not found"),
    Case("pred_dir_missing", "evaluate", ev(None, "pred_dir={d}/in/nothing"), r"{d}/in/nothing: prediction folder"),
    Case("manifest_not_yaml", "evaluate", ev(lambda d: _write(_data(d) / "dataset.yaml", "eval: [unclosed\n")),
         r"{d}/in/data/dataset\.yaml: bad manifest"),
    Case("manifest_names_a_path", "evaluate",
         ev(lambda d: _replace(_data(d) / "dataset.yaml", f"- {EVAL2}", "- ../../x")),
         r"{d}/in/data/dataset\.yaml:\d+: eval: sequence name"),
    Case("manifest_no_eval", "evaluate", ev(lambda d: _write(_data(d) / "dataset.yaml", yaml.safe_dump(
        {"name": "r", "species": "rat", "num_animals": 2, "train": [TRAIN], "eval": []}))),
         r"dataset\.yaml: lists no eval sequences"),
    Case("out_dir_under_a_file", "evaluate", ev(lambda d: _write(d / "in" / "afile", "x"), "out_dir={d}/in/afile/m"),
         r"config key 'out_dir': .*lies under {d}/in/afile, which is a file"),
]

# ------------------------------------------------------------------------------------------ generate / import


def gen(change: Callable[[Path], object] | None, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        return [x.replace("{d}", str(d)) for x in overrides]

    return setup


def _mot_sequence(d: Path, frames: int = 5, gt: str | bytes = "1,1,2,2,5,5,1,1,1\n") -> Path:
    """A MOTChallenge sequence of JPEG frames, ``d/in/mot/seqJ``."""
    root = d / "in" / "mot" / "seqJ"
    (root / "img1").mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(root / "img1" / f"{i + 1:06d}.jpg"), np.full((24, 32, 3), 30 * i, np.uint8))
    _write(root / "gt" / "gt.txt", gt)
    return root


def _cut_frame(folder: Path, index: int = 3) -> None:
    path = sorted(folder.glob("*.jpg"))[index - 1]
    path.write_bytes(path.read_bytes()[:60])


def _frames_folder(d: Path) -> Path:
    folder = d / "in" / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"f{i:03d}.jpg"), np.full((24, 32, 3), 20 * i, np.uint8))
    return folder


def _users_folder(d: Path, inside: str = "notes") -> Path:
    mine = d / "in" / "mine"
    _write(mine / inside / "keep.txt", "the user's\n")
    return mine


MOT = ["data=motchallenge", "data.source={d}/in/mot"]
VIDEO = ["data=video", "data.num_animals=2"]
GENERATE = [
    Case("mot_source_missing", "generate", gen(None, "data=motchallenge", "data.source={d}/in/nothing"),
         r"config key 'data\.source': folder not found: {d}/in/nothing"),
    Case("mot_into_users_folder", "generate", gen(lambda d: (_mot_sequence(d), _users_folder(d, "seqJ")), *MOT,
                                                  "out_dir={d}/in/mine"),
         r"{d}/in/mine: exists and holds seqJ but no import\.json.*out_dir"),
    Case("mot_corrupt_jpeg_in_img1", "generate", gen(lambda d: _cut_frame(_mot_sequence(d) / "img1"), *MOT),
         r"{d}/in/mot/seqJ/img1/000003\.jpg: frame 3: the JPEG is cut short"),
    Case("mot_not_an_image_in_img1", "generate",
         gen(lambda d: _write(_mot_sequence(d) / "img1" / "000002.jpg", "<html>oops</html>"), *MOT),
         r"seqJ/img1/000002\.jpg: frame 2 is not an image"),
    Case("mot_gt_beyond_frames", "generate",
         gen(lambda d: _mot_sequence(d, gt="1,1,2,2,5,5,1,1,1\n9,1,2,2,5,5,1,1,1\n"), *MOT),
         r"{d}/in/mot/seqJ/gt/gt\.txt:2: frame 9 is beyond"),
    Case("mot_gt_not_utf8", "generate", gen(lambda d: _mot_sequence(d, gt=b"1,1,2,2,5,5,1,1,1\n\xff\n"), *MOT),
         r"seqJ/gt/gt\.txt:2: not UTF-8"),
    Case("mot_seqinfo_name_a_path", "generate",
         gen(lambda d: _write(_mot_sequence(d) / "seqinfo.ini", "[Sequence]\nname=../../x\nimDir=img1\nframeRate=5\n"
                              "seqLength=5\nimWidth=32\nimHeight=24\nimExt=.jpg\n"), *MOT),
         r"seqJ/seqinfo\.ini:2: .*sequence name"),
    Case("mot_unknown_train_sequence", "generate", gen(_mot_sequence, *MOT, "data.train=[seqX]"),
         r"config key 'data\.train': unknown sequence"),
    Case("video_not_a_video", "generate", gen(lambda d: _write(d / "in" / "clip.mp4", "not a video"), *VIDEO,
                                              "data.source={d}/in/clip.mp4"),
         r"{d}/in/clip\.mp4"),
    Case("video_frames_corrupt_jpeg", "generate", gen(lambda d: _cut_frame(_frames_folder(d), 4), *VIDEO,
                                                      "data.source={d}/in/frames"),
         r"{d}/in/frames/f003\.jpg: frame 4: the JPEG is cut short"),
    Case("video_num_animals_missing", "generate", gen(_frames_folder, "data=video", "data.source={d}/in/frames"),
         r"config key 'data\.num_animals'"),
    Case("video_bad_splits", "generate", gen(_frames_folder, *VIDEO, "data.source={d}/in/frames",
                                             "data.splits.train=[4,2]"),
         r"config key 'data\.splits\.train': expected a frame range"),
    Case("video_into_users_folder", "generate", gen(lambda d: (_frames_folder(d), _users_folder(d)), *VIDEO,
                                                    "data.source={d}/in/frames", "out_dir={d}/in/mine"),
         r"{d}/in/mine: exists and holds notes but no import\.json"),
    Case("video_out_dir_a_file", "generate", gen(lambda d: (_frames_folder(d), _write(d / "in" / "afile", "x")),
                                                 *VIDEO, "data.source={d}/in/frames", "out_dir={d}/in/afile"),
         r"config key 'out_dir': {d}/in/afile is a file"),
    Case("synthetic_over_users_folder", "generate", gen(lambda d: _users_folder(d, TRAIN), "data.size=tiny",
                                                        "out_dir={d}/in/mine"),
         rf"{{d}}/in/mine/{TRAIN}: exists but was not rendered here.*out_dir"),
    Case("synthetic_unknown_size", "generate", gen(None, "data.size=huge"), r"config key 'data\.size'"),
    Case("synthetic_no_animals", "generate", gen(None, "data.size=tiny", "data.num_animals=0"),
         r"config key 'data\.num_animals'"),
    Case("data_name_a_path", "generate", gen(None, "data.size=tiny", "data.name=../x"), r"config key 'data\.name'"),
    Case("sleap_file_garbage", "generate", gen(lambda d: _write(d / "in" / "x.slp", b"\x00garbage" * 50),
                                               "data=sleap_clip", "data.slp={d}/in/x.slp"),
         r"{d}/in/x\.slp: cannot read SLEAP labels"),
    Case("coco_labels_not_json", "generate",
         gen(lambda d: (_frames_folder(d), _write(d / "in" / "coco.json", "{not json")), "data=labelled_video",
             "data.source={d}/in/frames", "data.labels={d}/in/coco.json", "data.format=coco", "data.num_animals=2"),
         r"{d}/in/coco\.json"),
]

# ------------------------------------------------------------------------------------------------ annotate

def ann(change: Callable[[Path], object] | None, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        return [f"paths.dataset_dir={_data(d)}", "data.size=tiny", *(x.replace("{d}", str(d)) for x in overrides)]

    return setup


QUEUE = ["annotator=samqa", "model.image_size=64", "prompts=queue", "prompts.queue_dir={d}/in/queue"]


def answers(text: str) -> Callable[[Path], list[str]]:
    return ann(lambda d: _write(d / "in" / "queue" / TRAIN / "answers.json", text), *QUEUE)


ANSWERS = r"{d}/in/queue/synthetic_rats-train/answers\.json: frame '1'"


def _evil_sam(d: Path) -> Path:
    return write_malicious_checkpoint(d / "in" / "evil.pt", d / MARKER)


def _seg_export(d: Path, evil_sidecar: bool) -> Path:
    """A U-Net export as samqa-train writes it; ``evil_sidecar``: its sidecar names a class deep inside."""
    net = {"_target_": "segmentation_models_pytorch.Unet", "encoder_name": "resnet18", "encoder_weights": None,
           "in_channels": 3, "classes": 2}
    torch.manual_seed(0)
    path = export_segmentation(instantiate(net), d / "in" / "seg.pt", (64, 64), meta={"model": net})
    if evil_sidecar:
        side = d / "in" / "seg.pt.json"
        info = json.loads(side.read_text())
        info["meta"]["model"]["aux_params"] = {"_target_": "builtins.open", "file": str(d / MARKER), "mode": "w"}
        side.write_text(json.dumps(info))
    else:
        write_malicious_checkpoint(path, d / MARKER, payload=torch.load(path, weights_only=True))
    return path


def _damage_store(d: Path) -> None:
    store = d / "run" / "labels" / TRAIN
    store.mkdir(parents=True)
    (store / "store.json").write_text('{"fingerprint": {"annot')


ANNOTATE = [
    Case("max_frames_negative", "annotate", ann(None, "annotator=manual", "max_frames=-5"), r"config key 'max_frames'"),
    Case("overlap_thresh_above_1", "annotate", ann(None, "annotator=samqa", "model.image_size=64",
                                                   "qa.overlap_thresh=1.5"),
         r"config key 'qa\.overlap_thresh'"),
    Case("size_ratio_negative", "annotate", ann(None, "annotator=samqa", "model.image_size=64",
                                                "qa.size_ratio=[-1,2]"),
         r"config key 'qa\.size_ratio"),
    Case("answers_duplicate_identity", "annotate",
         answers('{"1": [{"id": 1, "box": [1, 2, 30, 40]}, {"id": 1, "box": [50, 50, 80, 90]}]}'),
         ANSWERS + r", entry 2: id 1 has two boxes"),
    Case("answers_string_box", "annotate", answers('{"1": [{"id": 1, "box": "1234"}]}'),
         ANSWERS + r", entry 1 \(id 1\): box must be a list of 4 numbers"),
    Case("answers_wrong_length", "annotate", answers('{"1": [{"id": 1, "box": [1, 2, 3]}]}'),
         ANSWERS + r", entry 1 \(id 1\): box must be a list of 4 numbers"),
    Case("answers_not_finite", "annotate", answers('{"1": [{"id": 1, "box": [1, 2, NaN, 40]}]}'),
         ANSWERS + r", entry 1 \(id 1\): box .* not finite"),
    Case("answers_negative_size", "annotate", answers('{"1": [{"id": 1, "box": [30, 2, 10, 40]}]}'),
         ANSWERS + r", entry 1 \(id 1\): box .* no or negative size"),
    Case("answers_outside_frame", "annotate", answers('{"1": [{"id": 1, "box": [1, 2, 30, 4000]}]}'),
         ANSWERS + r", entry 1 \(id 1\): box .* outside the 160x120 frame"),
    Case("answers_duplicate_frame", "annotate", answers('{"1": [], "1": [{"id": 1, "box": [1, 2, 30, 40]}]}'),
         r"answers\.json: not valid JSON \(key '1' appears twice"),
    Case("answers_not_json", "annotate", answers('{"1": [{"id": 1, "box": [1, 2'),
         r"{d}/in/queue/synthetic_rats-train/answers\.json: not valid JSON"),
    Case("answers_unknown_key", "annotate", answers('{"1": [{"id": 1, "box": [1, 2, 30, 40], "score": 1}]}'),
         ANSWERS + r", entry 1: expected"),
    Case("sequences_a_path", "annotate", ann(None, "annotator=manual", "sequences=[../x]"),
         r"config key 'sequences'"),
    Case("sequences_unknown", "annotate", ann(None, "annotator=manual", "sequences=[nope]"),
         r"config key 'sequences'.*nope"),
    Case("store_json_cut_short", "annotate", ann(_damage_store, "annotator=manual", "out_dir={d}/run/labels"),
         rf"{{d}}/run/labels/{TRAIN}/store\.json: not a store\.json"),
    Case("resume_with_another_config", "annotate", ann(None, "annotator=manual", "annotator.every=2",
                                                       "out_dir={d}/in/labels"),
         rf"{{d}}/in/labels/{TRAIN}/store\.json: these labels were made with another configuration"),
    Case("gt_not_utf8", "annotate", ann(lambda d: _append(_gt(d, TRAIN), b"\xff\n"), "annotator=manual"),
         rf"{{d}}/in/data/{TRAIN}/gt/gt\.txt:\d+: not UTF-8"),
    Case("out_dir_under_a_file", "annotate", ann(lambda d: _write(d / "in" / "afile", "x"), "annotator=manual",
                                                 "out_dir={d}/in/afile/labels"),
         r"config key 'out_dir'"),
    Case("sam_checkpoint_runs_code", "annotate", ann(_evil_sam, "annotator=samqa", "model.image_size=64",
                                                     "model.checkpoint={d}/in/evil.pt"),
         r"{d}/in/evil\.pt: .*builtins\.exec.*trust_checkpoint=true"),
    Case("sam_checkpoint_garbage", "annotate", ann(lambda d: _write(d / "in" / "junk.pt", b"\x80\x04junk" * 20),
                                                   "annotator=samqa", "model.image_size=64",
                                                   "model.checkpoint={d}/in/junk.pt"),
         r"{d}/in/junk\.pt"),
    Case("sam_checkpoint_missing", "annotate", ann(None, "annotator=samqa", "model.image_size=64",
                                                   "model.checkpoint={d}/in/none.pt"),
         r"{d}/in/none\.pt"),
    Case("segmentation_sidecar_runs_code", "annotate", ann(lambda d: _seg_export(d, evil_sidecar=True),
                                                           "annotator=watershed_unet",
                                                           "annotator.checkpoint={d}/in/seg.pt"),
         r"{d}/in/seg\.pt\.json: meta\.model\.aux_params holds a config node.*trust_checkpoint=true"),
    Case("segmentation_weights_run_code", "annotate", ann(lambda d: _seg_export(d, evil_sidecar=False),
                                                          "annotator=watershed_unet",
                                                          "annotator.checkpoint={d}/in/seg.pt"),
         r"{d}/in/seg\.pt: .*trust_checkpoint=true"),
]

# ------------------------------------------------------------------------------------------------ train

TRAIN_ARGS = ["stage=finetune", "model.image_size=64", "trainer.max_epochs=1", "trainer.min_epochs=null",
              "data.size=tiny"]


def tr(change: Callable[[Path], object] | None, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        return [f"paths.dataset_dir={_data(d)}", *TRAIN_ARGS, *(x.replace("{d}", str(d)) for x in overrides)]

    return setup


def _evil_lightning(d: Path) -> Path:
    payload = {"state_dict": {"w": torch.zeros(1)}, "epoch": 0, "global_step": 0,
               "pytorch-lightning_version": "2.5.0", "hyper_parameters": WritesMarker(d / MARKER)}
    path = d / "in" / "evil.ckpt"
    torch.save(payload, path)
    return path


TRAINING = [
    Case("resume_checkpoint_runs_code", "train", tr(_evil_lightning, "ckpt_path={d}/in/evil.ckpt"),
         r"{d}/in/evil\.ckpt: .*trust_checkpoint=true"),
    Case("model_checkpoint_runs_code", "train", tr(_evil_sam, "model.checkpoint={d}/in/evil.pt"),
         r"{d}/in/evil\.pt: .*trust_checkpoint=true"),
    Case("model_checkpoint_garbage", "train", tr(lambda d: _write(d / "in" / "junk.pt", b"PK\x03\x04junk" * 9),
                                                 "model.checkpoint={d}/in/junk.pt"),
         r"{d}/in/junk\.pt"),
    Case("training_gt_cut_mid_row", "train", tr(lambda d: _append(_gt(d, TRAIN), b"3,1,10")),
         rf"{{d}}/in/data/{TRAIN}/gt/gt\.txt:\d+: expected 6 to 10 columns"),
]

# ------------------------------------------------------------------------------------------------ export


def ex(change: Callable[[Path], object] | None, *overrides: str, fmt: str = "coco") -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        defaults = {"labels": f"{d}/in/labels", "format": fmt, "out_dir": f"{d}/run/export"}
        given = [x.replace("{d}", str(d)) for x in overrides]
        keys = {x.split("=", 1)[0] for x in given}
        return [*(f"{k}={v}" for k, v in defaults.items() if k not in keys), *given]

    return setup


def _label(d: Path, name: str) -> Path:
    return d / "in" / "labels" / TRAIN / name


EXPORT = [
    Case("labels_missing", "export", ex(None, "labels={d}/in/nothing"), r"{d}/in/nothing"),
    Case("unknown_format", "export", ex(None, fmt="xml"), r"config key 'format'"),
    Case("into_users_folder", "export", ex(_users_folder, "out_dir={d}/in/mine"),
         r"{d}/in/mine: exists and is not empty: an export never replaces a folder.*out_dir"),
    Case("out_dir_a_file", "export", ex(lambda d: _write(d / "in" / "afile", "x"), "out_dir={d}/in/afile"),
         r"config key 'out_dir': {d}/in/afile is a file"),
    Case("labels_not_utf8", "export", ex(lambda d: _append(_label(d, "labels.txt"), b"\xff\xfe\n"), fmt="yolo"),
         rf"{{d}}/in/labels/{TRAIN}/labels\.txt:\d+: not UTF-8"),
    Case("frames_list_damaged", "export", ex(lambda d: _append(_label(d, "frames.txt"), b"eleven\n"), fmt="mot"),
         rf"{{d}}/in/labels/{TRAIN}/frames\.txt:11: not a frame number"),
    Case("sequences_a_path", "export", ex(None, "sequences=[../x]"), r"config key 'sequences'"),
]

# ------------------------------------------------------------------------------------------------ study

EVIL_ACT = "__import__('pathlib').Path('{marker}').touch() or nn.SiLU()"


def st(change: Callable[[Path], object] | None, *overrides: str) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        if change is not None:
            change(d)
        return [f"paths.dataset_dir={_data(d)}", "annotator=manual", *(x.replace("{d}", str(d)) for x in overrides)]

    return setup


def _evil_yaml(d: Path) -> Path:
    arch = yaml.safe_load((YOLO_ROOT / "cfg" / "models" / "v8" / "yolov8.yaml").read_text())
    arch["activation"] = EVIL_ACT.format(marker=d / MARKER)
    return _write(d / "in" / "evil.yaml", yaml.safe_dump(arch))


STUDY = [
    Case("detector_yaml_runs_code", "study", st(_evil_yaml, "detector.model={d}/in/evil.yaml"),
         r"{d}/in/evil\.yaml: activation .*trust_checkpoint=true"),
    Case("detector_weights_run_code", "study",
         st(lambda d: write_malicious_checkpoint(d / "in" / "evil.pt", d / MARKER), "detector.model={d}/in/evil.pt"),
         r"{d}/in/evil\.pt: cannot be loaded as an ultralytics checkpoint.*trust_checkpoint=true"),
    Case("overlap_thresh_above_1", "study", st(None, "annotator=samqa", "qa.overlap_thresh=1.5"),
         r"config key 'qa\.overlap_thresh'"),
    Case("cache_dir_under_a_file", "study", st(lambda d: _write(d / "in" / "afile", "x"),
                                               "study.cache_dir={d}/in/afile/cache"),
         r"config key 'study\.cache_dir'"),
    Case("max_frames_negative", "study", st(None, "max_frames=-5"), r"config key 'max_frames'"),
    Case("detector_weights_missing", "study", st(None, "detector.model={d}/in/none.pt"), r"{d}/in/none\.pt"),
    Case("detector_weights_garbage", "study", st(lambda d: _write(d / "in" / "junk.pt", b"\x80\x02junk" * 9),
                                                 "detector.model={d}/in/junk.pt"),
         r"{d}/in/junk\.pt"),
    Case("unknown_data_size", "study", st(None, "data.size=huge"), r"config key 'data\.size'"),
    Case("training_gt_damaged", "study", st(lambda d: _append(_gt(d, TRAIN), b"1,1,1,1,1\n")),
         rf"{{d}}/in/data/{TRAIN}/gt/gt\.txt:\d+: expected 6 to 10 columns"),
]

CASES = EVALUATE + GENERATE + ANNOTATE + TRAINING + EXPORT + STUDY


def test_the_suite_has_at_least_60_cases_with_unique_names() -> None:
    names = [f"{c.task}-{c.name}" for c in CASES]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.task}-{c.name}")
def test_bad_input_is_a_clear_error_and_nothing_outside_the_run_changes(case: Case, case_dir: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    overrides = case.setup(case_dir)
    run = case_dir / "run"
    before = snapshot(case_dir, skip=run)
    cfg = compose_in(case.task, run, overrides)
    with pytest.raises(SystemExit) as exit_:
        run_as_app(case.task, cfg)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert exit_.value.code == 1 and len(errors) == 1, errors
    pattern = case.names.replace("{d}", re.escape(str(case_dir)))
    assert re.search(pattern, errors[0]), f"{errors[0]!r} does not match {pattern!r}"
    assert not (case_dir / MARKER).exists(), "code from a file ran"
    assert snapshot(case_dir, skip=run) == before, "something outside the run's folder changed"


# ------------------------------------------------------------------------------------- faults handled, not errors


def test_an_empty_ground_truth_is_a_warning_and_n_a(case_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    gt = _write(_gt(case_dir, EVAL2), "")
    run = case_dir / "run"
    cfg = compose_in("evaluate", run, ev()(case_dir))
    with caplog.at_level("WARNING", logger="samqa_framework.evaluate.trackeval_runner"):
        metrics = run_as_app("evaluate", cfg)
    assert f"{gt}: the ground truth of sequence {EVAL2} is empty" in caplog.text
    written = json.loads((run / "metrics.json").read_text())
    assert set(written[EVAL2].values()) == {None} and written["COMBINED"]["IDF1"] == pytest.approx(100.0)
    assert metrics is not None and "| synthetic_rats-eval2 " in (run / "metrics.md").read_text()


def test_a_failure_between_the_metrics_files_keeps_the_old_set(case_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = case_dir / "run"
    run_as_app("evaluate", compose_in("evaluate", run, ev()(case_dir)))
    old = snapshot(run)
    _append(_pred(case_dir), b"20,77,1,1,5,5,1,1,1\n")  # new numbers, then a crash after metrics.json

    def crash(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("samqa_framework.evaluate.report.format_csv", crash)
    with pytest.raises(KeyboardInterrupt):
        run_as_app("evaluate", compose_in("evaluate", run, ev()(case_dir)))
    now = snapshot(run)
    assert {k: v for k, v in now.items() if k.startswith("metrics.")} == \
        {k: v for k, v in old.items() if k.startswith("metrics.")}
    assert not [k for k in now if k.startswith(".metrics.")], "a temporary was left"
