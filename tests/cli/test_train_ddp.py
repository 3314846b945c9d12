"""DDP under Hydra: samqa-train starts the ranks inside the job, so runs and multiruns keep one folder per job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from lightning.pytorch import Trainer

from samqa_framework.utils.ddp import check_single_node, lightning_would_relaunch
from samqa_framework.utils.errors import ConfigError
from samqa_framework.utils.hydra import config_node
from tests.cli.helpers import run_cli

DDP_CPU = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
# 8 training frames (every 5th of 40) in batches of 2 over 2 ranks: 2 steps an epoch
TINY = ["data.size=tiny", "model.image_size=64", "logger=csv", "callbacks=none", "stage.datamodule.every=5",
        "stage.datamodule.batch_size=2", "trainer.max_epochs=1", "+trainer.limit_val_batches=1"]


def test_ddp_config_starts_its_ranks_in_the_job(compose_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_cfg("train", DDP_CPU)
    trainer = instantiate(cfg.trainer)
    assert trainer.world_size == 2 and lightning_would_relaunch(trainer)  # Lightning alone would re-run argv
    assert trainer.strategy._ddp_kwargs == {"find_unused_parameters": True}
    assert not lightning_would_relaunch(Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn"))
    assert not lightning_would_relaunch(Trainer(accelerator="cpu", devices=1))
    monkeypatch.setenv("LOCAL_RANK", "0")  # torchrun (or a rank started by us) started the processes already
    assert not lightning_would_relaunch(instantiate(cfg.trainer))


def test_ranks_are_started_on_one_node_only(compose_cfg) -> None:
    cfg = compose_cfg("train", [*DDP_CPU, "+trainer.num_nodes=2"])
    trainer = instantiate(cfg.trainer)
    with pytest.raises(ConfigError, match=r"'trainer\.num_nodes'"), config_node(cfg, "trainer"):
        check_single_node(trainer)


@pytest.mark.slow
def test_ddp_multirun_keeps_one_folder_per_job_and_exports_each_model(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 ranks on a shared CPU: no thread oversubscription
    proc = run_cli("samqa-train", "-m", *DDP_CPU, *TINY, "+trainer.limit_train_batches=2", "final_validate=false",
                   "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = tmp_path / "outputs"
    # one sweep folder with the two jobs, and no other run folder anywhere (no rank made its own)
    assert [p.relative_to(outputs).as_posix() for p in outputs.glob("*/*")] == ["train/multirun"]
    (sweep,) = (outputs / "train" / "multirun").iterdir()
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    assert not list(outputs.rglob("*.pl_hydra*")) and not list(outputs.rglob("train_ddp_process_*"))
    for job in ("0", "1"):
        export = sweep / job / "sam_finetune.pt"
        assert export.is_file(), sorted(p.name for p in (sweep / job).iterdir())
        meta = json.loads(export.with_name("sam_finetune.pt.json").read_text())
        assert meta["meta"]["global_step"] == 2  # the job's numbers are the ranks' numbers, not a copy's
        assert f"model: {export}" in proc.stdout
        assert (sweep / job / "csv" / "version_0" / "metrics.csv").is_file()
    assert proc.stdout.count("(2 steps, 1 epochs)") == 2  # printed once a job, by rank 0


@pytest.mark.slow
def test_bad_input_in_a_rank_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    proc = run_cli("samqa-train", *DDP_CPU, *TINY, "stage.datamodule.every=0", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: config key 'stage.datamodule.every': must be a whole number >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr
