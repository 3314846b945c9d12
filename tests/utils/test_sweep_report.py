from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from samqa_framework.utils.sweep_report import ParetoReport


def _job(overrides: list[str], value: object) -> SimpleNamespace:
    class Ret(SimpleNamespace):
        @property
        def return_value(self) -> object:
            if isinstance(value, Exception):
                raise value
            return value

    return Ret(overrides=overrides, hydra_cfg=None)


def test_report_lists_every_trial_and_optunas_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = ParetoReport(["mean_box_iou", "interventions_per_100_frames"], ["maximize", "minimize"],
                          summary_run=False)
    cfg = OmegaConf.create({"hydra": {"sweeper": {"params": {"qa.overlap_thresh": "interval(0.05, 0.5)"}},
                                      "runtime": {"output_dir": str(tmp_path / "0")},
                                      "sweep": {"dir": str(tmp_path)}}})
    report.on_job_end(cfg, _job(["qa.overlap_thresh=0.1", "data=synthetic_rats"], [0.9, 2.0]))
    report.on_job_end(cfg, _job(["qa.overlap_thresh=0.3"], (0.8, 1.0)))
    report.on_job_end(cfg, _job(["qa.overlap_thresh=0.4"], RuntimeError("boom")))
    OmegaConf.save(OmegaConf.create({"name": "optuna", "solutions": [
        {"params": {"qa.overlap_thresh": 0.3}, "values": [0.8, 1.0]},
        {"params": {"qa.overlap_thresh": 0.123456}, "values": [0.9, 2.0]},
        {"params": {"qa.overlap_thresh": 0.3}, "values": [0.8, 1.0]}]}),   # NSGA-II re-ran a setting
        tmp_path / "optimization_results.yaml")
    report.on_multirun_end(cfg)
    out = json.loads((tmp_path / "pareto.json").read_text())
    assert [t["params"] for t in out["trials"]] == [{"qa.overlap_thresh": "0.1"}, {"qa.overlap_thresh": "0.3"},
                                                    {"qa.overlap_thresh": "0.4"}]  # only swept keys
    assert [t["values"] for t in out["trials"]] == [[0.9, 2.0], [0.8, 1.0], None]  # the failed trial kept, no value
    assert [t["values"] for t in out["pareto_front"]] == [[0.9, 2.0], [0.8, 1.0]]  # best box IoU first, repeat merged
    assert [t["trials"] for t in out["pareto_front"]] == [1, 2]
    md = (tmp_path / "pareto.md").read_text()
    assert md.splitlines()[0] == "| qa.overlap_thresh | mean_box_iou | interventions_per_100_frames | trials |"
    assert "| 0.123 | 0.9 | 2 | 1 |" in md and "| 0.3 | 0.8 | 1 | 2 |" in md
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert "Pareto front (2 of 3 trials" in capsys.readouterr().out


def test_report_refuses_a_front_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="two each"):
        ParetoReport(["a"], ["maximize"])
    with pytest.raises(ValueError, match="maximize or minimize"):
        ParetoReport(["a", "b"], ["up", "down"])
