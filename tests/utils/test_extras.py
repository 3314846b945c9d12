"""conf/extras: the C allocator keeps a training step's memory for the next one (utils/extras.py)."""

from __future__ import annotations

import resource

import pytest
import torch

from samqa_framework import api
from samqa_framework.utils import extras
from samqa_framework.utils.errors import ConfigError

pytestmark = pytest.mark.skipif(extras._glibc() is None, reason="extras.malloc: needs glibc's mallopt")


def _faults_of_second_block(mb: int = 96) -> int:
    """Minor page faults while a block of ``mb`` MiB is allocated and written, after one like it was freed."""
    torch.ones(mb * 2**18).sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(mb * 2**18).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.fixture()
def restore_malloc():
    mode = extras._state["malloc"]
    yield
    extras.set_malloc(mode)


def test_reuse_serves_a_freed_large_block_again_without_page_faults(restore_malloc) -> None:
    extras.set_malloc("system")  # glibc maps a block this large afresh each time: a fault per 4 KiB page
    assert _faults_of_second_block() > 96 * 256 // 2
    extras.set_malloc("reuse")
    _faults_of_second_block()  # the heap grows once
    assert _faults_of_second_block() < 96 * 256 // 20


def test_bad_extras_name_the_key(restore_malloc) -> None:
    with pytest.raises(ConfigError, match=r"extras\.malloc.*'fast'.*reuse, system"):
        extras.apply_extras({"malloc": "fast"})
    with pytest.raises(ConfigError, match=r"extras\.threads.*unknown"):
        extras.apply_extras({"threads": 2})


def test_a_task_applies_its_extras(project, restore_malloc) -> None:
    extras.set_malloc("system")
    api.generate(["data.size=tiny", "preview=false"])  # conf/extras/default.yaml: reuse
    assert extras._state["malloc"] == "reuse"
    api.generate(["data.size=tiny", "preview=false", "extras.malloc=system"])
    assert extras._state["malloc"] == "system"
