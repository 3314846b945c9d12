"""Hydra plumbing shared by every entry point: config location, resolvers, and the task runner."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from samqa_framework.utils.errors import SamqaError
from samqa_framework.utils.offline import configure_offline

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# An installed wheel carries the configs as samqa_framework/conf; a checkout (editable install, PYTHONPATH=src) keeps
# them at the repo's top level.
CHECKOUT_ROOT: Path | None = None if (_PACKAGE_DIR / "conf").is_dir() else _PACKAGE_DIR.parents[1]
CONFIG_DIR = _PACKAGE_DIR / "conf" if CHECKOUT_ROOT is None else CHECKOUT_ROOT / "conf"


def project_root() -> Path:
    """Where runs land (``paths.root_dir`` unless SAMQA_ROOT is set): the checkout, whatever the working directory;
    for an installed wheel the working directory (never the environment the package is installed in)."""
    return CHECKOUT_ROOT if CHECKOUT_ROOT is not None else Path.cwd()


def register_resolvers() -> None:
    """``${samqa.project_root:}`` and ``${samqa.basename:PATH}``; safe to call more than once."""
    if not OmegaConf.has_resolver("samqa.project_root"):
        OmegaConf.register_new_resolver("samqa.project_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("samqa.basename"):
        OmegaConf.register_new_resolver("samqa.basename", lambda p: Path(str(p)).name)


register_resolvers()


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The job's config resolved to plain values, without Hydra's own node (what a logger or a subprocess gets)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def compose_config(config_name: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose another primary config of ours (e.g. ``train`` inside the study app), as its own app would.

    Inside a running Hydra app the global Hydra is initialised with our config dir; elsewhere (tests, scripts)
    it is initialised for the call. ``${hydra:...}`` values still resolve against the running app's config.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose(config_name, overrides=overrides or [])
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides or [])


def run_task(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task: offline defaults, and bad input reported as one line with exit status 1 (or the
    error's own ``exit_code``, e.g. 3 when a person must supply prompts).

    A ``SamqaError`` names the file/line or config key at fault, so a traceback would only hide it.
    Other exceptions keep Hydra's own reporting (they are bugs, and the traceback matters).
    """

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        configure_offline()
        try:
            return fn(cfg)
        except (SamqaError, InstantiationException) as exc:
            # instantiate() wraps a constructor's error: report the user's mistake, not the wrapper
            cause = exc if isinstance(exc, SamqaError) else exc.__cause__
            if not isinstance(cause, SamqaError):
                raise
            log.debug("bad input: %s", cause)
            print(f"error: {cause}", file=sys.stderr)
            raise SystemExit(getattr(cause, "exit_code", 1)) from None

    return wrapper
