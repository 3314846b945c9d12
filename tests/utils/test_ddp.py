"""DDP ranks started by the job: a rank is a fresh process, so the job's trust in checkpoints goes with it."""

from __future__ import annotations

import queue

import pytest

from samqa_framework.utils import ddp
from samqa_framework.utils.trust import trusted


@pytest.mark.parametrize("trust", [False, True])
def test_a_rank_trusts_checkpoints_as_its_job_does(monkeypatch: pytest.MonkeyPatch, trust: bool) -> None:
    for var in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "NODE_RANK", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(var, raising=False)  # what the rank sets is undone after the test
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    results: queue.SimpleQueue = queue.SimpleQueue()
    ddp._rank_main(0, lambda cfg: trusted(), {}, 1, 12345, [], results, trust)  # as run_ranks starts it
    assert results.get_nowait() == ("ok", trust)
    assert not trusted()
