from __future__ import annotations

import json
import shutil
from pathlib import Path

import motmetrics
import pytest

from samqa_framework.evaluate.trackeval_runner import COMBINED, evaluate_dirs

from .helpers import run_cli

MM_DATA = Path(motmetrics.__file__).parent / "data"


@pytest.fixture
def tud(tmp_path: Path) -> tuple[Path, Path]:
    """Real public MOT15 sequences: gt in MOTChallenge layout, the tracker output as <seq>.txt."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for seq in ("TUD-Campus", "TUD-Stadtmitte"):
        (gt_dir / seq / "gt").mkdir(parents=True)
        shutil.copy(MM_DATA / seq / "gt.txt", gt_dir / seq / "gt" / "gt.txt")
        pred_dir.mkdir(exist_ok=True)
        shutil.copy(MM_DATA / seq / "test.txt", pred_dir / f"{seq}.txt")
    return gt_dir, pred_dir


def test_samqa_evaluate_writes_reports_and_wandb_run(tmp_path: Path, tud: tuple[Path, Path]) -> None:
    gt_dir, pred_dir = tud
    out = tmp_path / "out"
    proc = run_cli("samqa-evaluate", f"gt_dir={gt_dir}", f"pred_dir={pred_dir}", f"out_dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"TUD-Campus", "TUD-Stadtmitte", COMBINED}
    expected = evaluate_dirs(gt_dir, pred_dir)
    for seq, row in expected.items():
        for key in ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA"):
            assert metrics[seq][key] == pytest.approx(row[key], abs=1e-3)
        assert metrics[seq]["IDSW"] == row["IDSW"]
    assert (out / "metrics.csv").read_text().startswith("sequence,")
    assert "| TUD-Campus " in (out / "metrics.md").read_text()
    assert "| COMBINED " in proc.stdout  # the table is printed
    runs = list(tmp_path.glob("outputs/evaluate/*/wandb/offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.parametrize("case,needle", [("missing_pred", "TUD-Stadtmitte.txt"), ("bad_columns", "gt.txt:1")])
def test_bad_input_is_one_clear_error(tmp_path: Path, tud: tuple[Path, Path], case: str, needle: str) -> None:
    gt_dir, pred_dir = tud
    if case == "missing_pred":
        (pred_dir / "TUD-Stadtmitte.txt").unlink()
    else:
        (gt_dir / "TUD-Campus" / "gt" / "gt.txt").write_text("1,2,3\n")
    out = tmp_path / "out"
    proc = run_cli("samqa-evaluate", f"gt_dir={gt_dir}", f"pred_dir={pred_dir}", f"out_dir={out}", "logger=csv",
                   cwd=tmp_path)
    assert proc.returncode == 1
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "metrics.json").exists()


def test_unknown_config_key_fails(tmp_path: Path) -> None:
    proc = run_cli("samqa-evaluate", "gt_dir=x", "pred_dir=y", "no_such_key=1", cwd=tmp_path)
    assert proc.returncode != 0 and "no_such_key" in proc.stderr


def test_main_returns_the_combined_idf1_to_a_sweeper(compose_cfg, tmp_path: Path, tud: tuple[Path, Path]) -> None:
    from samqa_framework.cli.evaluate import main

    gt_dir, pred_dir = tud
    cfg = compose_cfg("evaluate", [f"gt_dir={gt_dir}", f"pred_dir={pred_dir}", "logger=csv"])
    assert main(cfg) == pytest.approx(evaluate_dirs(gt_dir, pred_dir)[COMBINED]["IDF1"])  # Hydra's passthrough


def test_a_data_set_folder_scores_its_eval_split_by_default(compose_cfg, tmp_path: Path, tiny_rats: Path) -> None:
    from samqa_framework.data.mot import write_mot
    from samqa_framework.data.sequence import DatasetManifest
    from samqa_framework.evaluate.task import evaluate

    manifest = DatasetManifest.read(tiny_rats)
    pred = tmp_path / "pred"
    for seq in manifest.sequences(tiny_rats, "eval"):  # the training sequence has no tracks
        write_mot(pred / f"{seq.name}.txt", seq.gt(), columns=10)
    cfg = compose_cfg("evaluate", [f"gt_dir={tiny_rats}", f"pred_dir={pred}", f"out_dir={tmp_path / 'out'}",
                                   "logger=csv"])
    assert set(evaluate(cfg)) == {*manifest.eval, COMBINED}
    # or the data set named by `data` (paths.dataset_dir), as the other apps find it
    cfg = compose_cfg("evaluate", ["data=synthetic_rats", "data.size=tiny", f"paths.data_dir={tiny_rats.parent}",
                                   f"pred_dir={pred}", f"out_dir={tmp_path / 'out2'}", "logger=csv"])
    assert set(evaluate(cfg)) == {*manifest.eval, COMBINED}


def test_without_gt_dir_or_data_the_key_to_set_is_named(tmp_path: Path) -> None:
    proc = run_cli("samqa-evaluate", f"pred_dir={tmp_path}", "logger=csv", cwd=tmp_path)
    assert proc.returncode == 1 and "config key 'gt_dir'" in proc.stderr and "Traceback" not in proc.stderr
