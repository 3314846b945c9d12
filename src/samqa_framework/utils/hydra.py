"""Hydra plumbing shared by every entry point: config location, resolvers, and the task runner."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

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


@contextlib.contextmanager
def restoring_global_hydra() -> Iterator[Any]:
    """Run a block that may re-initialise Hydra's process-wide ``GlobalHydra`` (an ``initialize_*`` context, sam2's
    model builder), then put back the caller's: the very singleton object with its state, the version base and the
    job name (a running app keeps its Hydra untouched)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.utils import JobRuntime
    from hydra.version import VersionBase

    gh = GlobalHydra.instance()
    saved_hydra, saved_version = gh.hydra, VersionBase.instance().getbase()
    saved_name = JobRuntime.instance().get("name")
    try:
        yield gh
    finally:
        # Hydra's initialize_* contexts may swap in a deep copy of the singleton: put back the very object
        # (others may hold it) with its state, and the version base (which may be "unspecified").
        GlobalHydra.set_instance(gh)
        gh.hydra = saved_hydra
        VersionBase.instance().version_base = saved_version
        JobRuntime.instance().set("name", saved_name)


# The HydraConfig that compose() set last: a different one set means a Hydra app is running (compose keeps it).
_composed: list[Any] = [None]


def compose(config_name: str, overrides: Sequence[str] | None = None, output_dir: str | os.PathLike[str] | None = None,
            return_hydra_config: bool = False) -> DictConfig:
    """Compose a primary config of ours (``train``, ``study``...) as its app would, anywhere: a notebook, a script,
    a test, or inside a running app (the study composes its ``train`` configs).

    ``output_dir``: the run's folder (``hydra.runtime.output_dir``, hence ``paths.output_dir``); default: a new one
    where the app would make it (``hydra.run.dir``: ``<paths.log_dir>/<task>/<timestamp>``). It is created.
    ``${hydra:...}`` values are resolved here, against this config's own Hydra node, so the config stays valid
    whatever is composed next. Outside an app, Hydra's ``HydraConfig`` is set to this config (code that reads it
    works as in an app); inside a running app, the app's is kept. ``return_hydra_config``: keep the ``hydra`` node.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with restoring_global_hydra() as gh:
        gh.clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), job_name=config_name, version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=list(overrides or []), return_hydra_config=True)
    run_dir = Path(output_dir if output_dir is not None else OmegaConf.select(cfg, "hydra.run.dir")).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    with read_write(cfg.hydra), open_dict(cfg.hydra):  # what Hydra sets when it starts the job
        cfg.hydra.run.dir = str(run_dir)
        cfg.hydra.runtime.output_dir = str(run_dir)
    holder = HydraConfig.instance()
    running_app = holder.cfg is not None and holder.cfg is not _composed[0]
    saved = holder.cfg
    holder.set_config(cfg)
    try:
        _resolve_hydra_values(cfg)
    finally:
        if running_app:
            holder.cfg = saved
        else:
            _composed[0] = holder.cfg
    if not return_hydra_config:  # as an app's task function gets it
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
    return cfg


def _resolve_hydra_values(node: DictConfig | ListConfig) -> None:
    """Replace each ``${hydra:...}`` interpolation under ``node`` (the ``hydra`` node aside) by its value now."""
    keys = [k for k in node.keys() if k != "hydra"] if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        child = node._get_node(key)
        raw = child._value() if child is not None else None
        if isinstance(raw, str) and "${hydra:" in raw:
            node[key] = node[key]
        elif (isinstance(child, DictConfig | ListConfig) and not child._is_interpolation() and not child._is_none()
              and not child._is_missing()):
            _resolve_hydra_values(child)


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
