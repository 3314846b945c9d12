"""The Python API from a plain Python process (no Hydra app running): compose, run tasks, read their results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

import samqa_framework
from samqa_framework import api
from samqa_framework.data.sequence import DatasetManifest
from samqa_framework.evaluate.trackeval_runner import COMBINED


def test_compose_makes_the_run_folder_as_the_app_would_and_sets_hydra_config(project: Path) -> None:
    cfg = api.compose("generate", ["data.size=tiny"])
    out = Path(cfg.paths.output_dir)
    assert out.is_dir() and out.parent == project / "outputs" / "generate"  # <log_dir>/<task>/<timestamp>
    assert Path(cfg.out_dir) == out and cfg.paths.work_dir == str(project) and "hydra" not in cfg
    assert HydraConfig.get().runtime.output_dir == str(out) and HydraConfig.get().job.name == "generate"
    # a second config right after: its own folder and choices; the first one's values stay what they were
    study = samqa_framework.compose("study", ["annotator=manual"], output_dir=project / "mine")
    assert study.paths.output_dir == str(project / "mine") and (project / "mine").is_dir()
    assert study.study.method == "manual" and study.logger.wandb.name == "study-mine"
    assert Path(cfg.paths.output_dir) == out
    assert HydraConfig.get().job.name == "study"


def test_generate_then_evaluate_from_python(project: Path) -> None:
    data_dir = api.generate(["data.size=tiny", "preview=false"])
    manifest = DatasetManifest.read(data_dir)
    assert data_dir.parent == project / "outputs" / "generate" and len(manifest.eval) == 2
    pred = project / "tracks"  # the ground truth as the tracker's output: a perfect tracker
    pred.mkdir()
    for seq in manifest.sequences(data_dir, "eval"):
        shutil.copy(seq.gt_path, pred / f"{seq.name}.txt")
    cfg = api.compose("evaluate", [f"gt_dir={data_dir}", f"pred_dir={pred}", "logger=csv",
                                   f"sequences=[{','.join(manifest.eval)}]"])
    metrics = samqa_framework.run("evaluate", cfg)
    assert set(metrics) == {*manifest.eval, COMBINED} and metrics[COMBINED]["IDF1"] == pytest.approx(100.0)
    written = json.loads((Path(cfg.out_dir) / "metrics.json").read_text())
    assert written[COMBINED]["IDF1"] == pytest.approx(100.0)
    assert api.objective("evaluate", cfg, metrics) == metrics[COMBINED]["IDF1"]  # what samqa-evaluate returns
    assert api.objective("generate", cfg, data_dir) is None


def test_unknown_task_and_bad_override_are_refused(project: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'trian'"):
        api.run("trian", [])
    with pytest.raises(Exception, match="colr"):
        api.compose("generate", ["data.colr=1"])


@pytest.mark.parametrize("task", ["train", "annotate", "study"])
def test_trust_checkpoint_holds_for_the_whole_task(project: Path, monkeypatch: pytest.MonkeyPatch, task: str) -> None:
    """Off by default; trust_checkpoint=true lets the task's loaders load files that need code run (utils.trust)."""
    from types import SimpleNamespace

    from samqa_framework.utils.trust import trusted

    monkeypatch.setattr(api, "_module", lambda name: SimpleNamespace(**{name: lambda cfg: trusted()}))
    assert api.run(task, [f"hydra.run.dir={project}/a"]) is False
    assert api.run(task, [f"hydra.run.dir={project}/b", "trust_checkpoint=true"]) is True
    assert not trusted()  # only inside the task


def test_compose_inside_a_running_app_keeps_the_apps_hydra_config(tmp_path: Path) -> None:
    """The study composes its train configs inside its own app: the nested config resolves ${hydra:...} against
    its own composition (the model it chose), and the app's HydraConfig is left as it was."""
    app = tmp_path / "app.py"
    app.write_text(
        "import hydra\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "from samqa_framework.utils.hydra import CONFIG_DIR, compose\n\n"
        "@hydra.main(version_base='1.3', config_path=str(CONFIG_DIR), config_name='generate')\n"
        "def main(cfg):\n"
        "    before = HydraConfig.get().runtime.output_dir\n"
        "    train = compose('train', ['stage=segmentation', 'model=deeplabv3'], output_dir=cfg.paths.output_dir)\n"
        "    assert HydraConfig.get().runtime.output_dir == before and HydraConfig.get().job.name == 'app'\n"
        "    assert 'model' not in HydraConfig.get().runtime.choices\n"
        "    print('export', train.export_path)\n"
        "    print('out', cfg.paths.output_dir)\n\n"
        "main()\n")
    proc = subprocess.run([sys.executable, str(app), f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                          env={**os.environ, "SAMQA_ROOT": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines()[-2:])
    assert lines["export"] == f"{tmp_path}/run/seg_deeplabv3.pt" and lines["out"] == f"{tmp_path}/run"
