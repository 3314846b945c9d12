"""Start the ranks of a one-node DDP run from inside the running job, as torchrun would (samqa-train under Hydra).

Lightning's ``ddp`` starts ranks 1..N-1 by re-running the script with its argv. Under Hydra each copy then makes its
own run dir, and in a multirun (``-m`` in argv) each copy starts the whole sweep again. ``ddp_spawn`` avoids that
but runs ``fit`` (and every later ``validate``) in throw-away processes and leaves the job with copies of its
trainer, loggers and callbacks that never trained: ``global_step`` 0 in the export, a CSV logger that rewrites
metrics.csv from its own empty copy (rows lost, or a crash), a metric timeline without its final row.

Here the job starts the N processes itself with the variables torchrun sets (``LOCAL_RANK``, ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Each runs the job's training function once, start to end, as a
plain DDP script would; Lightning sees ``LOCAL_RANK`` and starts nothing. Rank 0's return value comes back.
Where a scheduler starts the ranks (SLURM's srun, torchrun), Lightning knows it and nothing is started here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp
from lightning.fabric.plugins.environments.lightning import find_free_network_port
from lightning.pytorch import Trainer
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from samqa_framework.utils.errors import ConfigError, SamqaError
from samqa_framework.utils.hydra import job_config, located_error
from samqa_framework.utils.trust import trusted, trusting

log = logging.getLogger(__name__)


class RankFailed(SamqaError):
    """A rank stopped on bad input (a ``SamqaError``): its message, reported by the job as one line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def lightning_would_relaunch(trainer: Trainer) -> bool:
    """True when ``trainer`` would start its other ranks by re-running the script (Lightning's ``ddp``, without
    torchrun or a scheduler having started them): then ``run_ranks`` must start them instead."""
    # _SubprocessScriptLauncher is the launcher that re-runs sys.argv; it is private, but the only way to tell
    # `ddp` from `ddp_spawn` whatever form (name, registry alias, DDPStrategy object) the config gives.
    launcher = trainer.strategy.launcher
    env = getattr(trainer.strategy, "cluster_environment", None)
    return (isinstance(launcher, _SubprocessScriptLauncher) and env is not None
            and not env.creates_processes_externally and trainer.world_size > 1)


def run_ranks(fn: Callable[[DictConfig], Any], cfg: DictConfig, nprocs: int) -> Any:
    """Run ``fn(cfg)`` in ``nprocs`` new processes (ranks 0..nprocs-1 of one node); returns rank 0's result.

    ``cfg`` is resolved here (``${hydra:...}`` only resolves in the job's own process). ``fn`` must be a
    module-level function (it is pickled) and its result picklable.
    """
    if nprocs < 2:
        raise ValueError(f"run_ranks needs >= 2 processes, got {nprocs}")
    plain = job_config(cfg)
    log_files = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    port = find_free_network_port()
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    log.info("Starting %d DDP ranks in this job (port %d)", nprocs, port)
    # a rank is a fresh process: it trusts checkpoints as this job does (trust_checkpoint, or the study's)
    procs = mp.start_processes(_rank_main, args=(fn, plain, nprocs, port, log_files, results, trusted()),
                               nprocs=nprocs, join=False, start_method="spawn")
    try:
        while not procs.join():
            pass
    except mp.ProcessRaisedException:
        report = _drain(results)
        if report and report[0] == "error":  # bad input: report it like the job itself would, in one line
            raise RankFailed(report[1], report[2]) from None
        raise
    report = _drain(results)
    if not report or report[0] != "ok":
        raise RuntimeError("rank 0 finished without a result")
    return report[1]


def _drain(queue) -> tuple | None:
    item = None
    while not queue.empty():
        item = queue.get()
    return item


def _rank_main(local_rank: int, fn: Callable[[DictConfig], Any], plain: dict, nprocs: int, port: int,
               log_files: list[str], results, trust: bool = False) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(nprocs),
                       "NODE_RANK": "0", "LOCAL_RANK": str(local_rank), "RANK": str(local_rank)})
    # Lightning reads the rank once, at import (before these variables existed here); loggers and rank-zero
    # messages created before fit() would otherwise all think they are rank 0.
    rank_zero_only.rank = local_rank
    if "OMP_NUM_THREADS" not in os.environ:  # as Lightning's own launchers do: share the cores between ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nprocs))
    if local_rank == 0:  # the job's log (Hydra set it up in the parent only) gets rank 0's messages too
        fmt = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
        logging.basicConfig(level=logging.INFO, format=fmt,
                            handlers=[logging.StreamHandler(), *(logging.FileHandler(f) for f in log_files)])
    cfg = OmegaConf.create(plain)
    try:
        with trusting(trust):
            out = fn(cfg)
    except Exception as exc:
        cause = located_error(exc, cfg)
        if cause is not None:
            results.put(("error", str(cause), getattr(cause, "exit_code", 1)))
        raise  # a non-zero exit, so that the other ranks are stopped rather than left waiting for this one
    if local_rank == 0:
        results.put(("ok", out))


def check_single_node(trainer: Trainer) -> None:
    """Ranks started here are on this machine only (a ``ConfigError`` names the trainer's ``num_nodes``)."""
    if trainer.num_nodes > 1:
        raise ConfigError("num_nodes", f"{trainer.num_nodes} nodes: multi-node DDP needs a launcher that starts the "
                                       "ranks on every node (SLURM: hydra/launcher=slurm with its nodes, and its "
                                       "tasks_per_node equal to the trainer's devices)")
