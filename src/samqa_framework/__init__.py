"""samqa-framework: foundation-model annotation of multi-animal videos, and what the labels are worth.

``samqa_framework.compose(config_name, overrides)`` and ``samqa_framework.run(task, cfg_or_overrides)`` are the
Python API's entry points (``samqa_framework.api``, which also has one function per task); they are imported on
first use, so ``import samqa_framework`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "compose", "run"]


def __getattr__(name: str) -> Any:  # PEP 562: the API only when asked for
    if name in ("compose", "run"):
        from samqa_framework import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
