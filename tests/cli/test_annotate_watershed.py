"""samqa-annotate with the watershed baseline, as a user runs it: a checkpoint in, the quality table out."""

from __future__ import annotations

import json
from pathlib import Path

from tests.annotate.watershed.test_annotator import write_tiny_unet
from tests.cli.helpers import run_cli

ARGS = ["annotator=watershed_unet", "data.size=tiny", "logger=csv", "progress=false"]


def test_watershed_unet_labels_the_tiny_rats_and_prints_the_quality_table(tmp_path: Path) -> None:
    checkpoint = write_tiny_unet(tmp_path / "seg_unet.pt")
    run = run_cli("samqa-annotate", *ARGS, f"annotator.checkpoint={checkpoint}", f"out_dir={tmp_path}/labels",
                  "annotator.postprocess.refine=none", cwd=tmp_path)  # refine=none: random weights, keep it quick
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| method | frames | mean_box_iou | mean_mask_iou | id_switches | recall | precision |" in run.stdout
    assert "| watershed_unet | 40 |" in run.stdout
    assert run.stdout.strip().endswith(f"labels: {tmp_path}/labels")
    quality = json.loads((tmp_path / "labels" / "synthetic_rats-train" / "label_quality.json").read_text())
    assert quality["method"] == "watershed_unet" and quality["frames"] == 40 and quality["interventions"] == 0


def test_watershed_without_a_checkpoint_names_the_key_and_the_training_command(tmp_path: Path) -> None:
    run = run_cli("samqa-annotate", *ARGS, cwd=tmp_path)
    assert run.returncode == 1
    assert "annotator.checkpoint" in run.stderr and "samqa-train stage=segmentation model=unet" in run.stderr
    assert "Traceback" not in run.stderr
