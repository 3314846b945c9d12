"""Keep sam2's use of Hydra's GLOBAL state from clashing with our Hydra apps (and theirs with it).

sam2 composes its model configs through Hydra's process-wide ``GlobalHydra``:

- at import, ``sam2/__init__.py`` runs ``initialize_config_module("sam2")`` when no Hydra is initialised and
  leaves it so for good; a later ``@hydra.main`` app or ``initialize_config_dir`` then fails with "GlobalHydra
  is already initialized" (and Hydra's version base stays at sam2's "1.2");
- inside a running ``@hydra.main`` app Hydra is already initialised with OUR config dir, so sam2's
  ``compose("configs/sam2.1/...")`` would search our configs and not find its own.

:func:`import_sam2` imports sam2 and puts the global state back as it was; :func:`sam2_hydra` gives sam2 its own
Hydra while a model is built and then restores the caller's (a running app keeps its Hydra untouched).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from types import ModuleType

from hydra import initialize_config_module

from samqa_framework.utils.hydra import restoring_global_hydra


def import_sam2() -> ModuleType:
    """``import sam2`` without leaving its Hydra initialisation behind; returns the module."""
    with restoring_global_hydra():
        return importlib.import_module("sam2")


@contextlib.contextmanager
def sam2_hydra() -> Iterator[None]:
    """Run sam2's ``build_sam2*`` (which call ``hydra.compose``) with sam2's config module as Hydra's."""
    with restoring_global_hydra() as gh:
        gh.clear()
        with initialize_config_module("sam2", version_base="1.2"):
            yield
