"""Whether this task may load files that need code run to load them (``trust_checkpoint``, off by default).

Checkpoints, model yamls and sidecars come from outside: our loaders read them as plain data (weights only, known
layer and activation names, model classes from our own configs) and refuse a file that needs more
(``UntrustedFileError``, naming the file and ``trust_checkpoint``). With ``trust_checkpoint=true`` they load it
the way the libraries would on their own, with a warning.

The switch holds for a whole task: ``api.run`` sets it from the task's config (every app and the Python API go
through it), the stages the study runs inside its own process see the study's, and DDP ranks started by the job
get it from their parent (``utils.ddp``). A thread started elsewhere sees the default: not trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextvars import ContextVar

from samqa_framework.utils.errors import TRUST_KEY

log = logging.getLogger(__name__)

_trusted: ContextVar[bool] = ContextVar("samqa_trust_checkpoint", default=False)


@contextlib.contextmanager
def trusting(enabled: bool) -> Iterator[None]:
    """Within the block, files that need code run to load them are loaded (``enabled``) or refused."""
    token = _trusted.set(bool(enabled))
    try:
        yield
    finally:
        _trusted.reset(token)


def trusted() -> bool:
    """True inside ``trusting(True)``: the user set ``trust_checkpoint=true``."""
    return _trusted.get()


def warn_trusted(path: str | os.PathLike[str], what: str) -> None:
    """Log that ``path`` is loaded the unsafe way because the user trusts it."""
    log.warning("%s: %s; loaded anyway because %s=true (it can run any code it holds)", path, what, TRUST_KEY)
