"""Hydra plumbing shared by every entry point: config location, resolvers, and the task runner."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import Container, DictConfig, ListConfig, OmegaConf, open_dict, read_write

from samqa_framework.utils.errors import ConfigError, SamqaError
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
    """``${samqa.project_root:}``, ``${samqa.basename:PATH}`` and ``${samqa.stem:PATH}`` (the name without its
    extension, of the absolute path: ``.`` is the working folder's name); safe to call more than once."""
    if not OmegaConf.has_resolver("samqa.project_root"):
        OmegaConf.register_new_resolver("samqa.project_root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("samqa.basename"):
        OmegaConf.register_new_resolver("samqa.basename", lambda p: Path(str(p)).name)
    if not OmegaConf.has_resolver("samqa.stem"):
        OmegaConf.register_new_resolver("samqa.stem", lambda p: Path(os.path.abspath(os.path.expanduser(str(p)))).stem)


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
            # a node instantiated without instantiate_node still names its full key here
            cause = located_error(exc, cfg)
            if cause is None:
                raise
            log.debug("bad input: %s", cause)
            print(f"error: {cause}", file=sys.stderr)
            raise SystemExit(getattr(cause, "exit_code", 1)) from None

    return wrapper


# ------------------------------------------------------------------------------------ errors with full keys


def _join(*keys: str) -> str:
    return ".".join(k for k in keys if k)


def _as_config(cfg: Any) -> Container:
    if isinstance(cfg, Container):
        return cfg
    return OmegaConf.create(dict(cfg) if isinstance(cfg, Mapping) else cfg, flags={"allow_objects": True})


def real_key(cfg: Container, key: str) -> str:
    """Where ``key`` (dotted, from ``cfg``'s root) is set: through interpolations, so ``annotator.qa.overlap_thresh``
    is ``qa.overlap_thresh`` when ``annotator.qa`` is ``${qa}``. The part that is not in the config stays as given
    (an argument left at its default)."""
    node: Any = cfg._get_root()
    rest = key.split(".") if key else []
    while rest and isinstance(node, Container):
        try:
            index: Any = int(rest[0]) if isinstance(node, ListConfig) else rest[0]
            child = node._get_node(index, validate_access=False)
            if child is not None and child._is_interpolation():
                child = child._maybe_dereference_node()
        except Exception:  # no such index, or an interpolation that does not resolve: stop there
            child = None
        if child is None:
            break
        node, rest = child, rest[1:]
    return _join(node._get_full_key(None), *rest)


def _hydra_node(exc: InstantiationException) -> str:
    """The node Hydra was instantiating: Hydra 1.3 ends its message with ``full_key: <key>`` for a node below the
    root of the config it was given (tests/utils/test_hydra.py checks this)."""
    last = str(exc).rsplit("\n", 1)[-1]
    return last.removeprefix("full_key: ") if last.startswith("full_key: ") else ""


def located_error(exc: BaseException, cfg: Any, node: str = "") -> SamqaError | None:
    """The user's mistake behind ``exc``, as it is reported; None when there is none (a bug: keep the traceback).

    ``exc`` came from code given the node ``node`` of ``cfg`` (the app's config, or any mapping). A ``ConfigError``
    names an argument of a class or function: its key goes under ``node``, or, raised while Hydra instantiated a
    node (an ``InstantiationException``), under the node Hydra names; then through interpolations to the key a user
    sets (:func:`real_key`). Other ``SamqaError`` name a file and come back as they are.
    """
    nodes = []
    while isinstance(exc, InstantiationException):
        nodes.append(_hydra_node(exc))  # outermost first: a class that instantiates its own argument adds a level
        exc = exc.__cause__
    if not isinstance(exc, SamqaError):
        return None
    if not isinstance(exc, ConfigError):
        return exc
    config = _as_config(cfg)
    base = _join(*nodes) if any(nodes) else _join(config._get_full_key(None), node)
    return ConfigError(real_key(config, _join(base, exc.key)), exc.message)


@contextlib.contextmanager
def config_node(cfg: Any, key: str) -> Iterator[None]:
    """Errors of the block's code, given the node ``key`` of ``cfg`` (``""``: ``cfg`` itself), name their full config
    key (:func:`located_error`), e.g. ``with config_node(cfg, "data"): builder.build(root)``. Not nested: the outer
    block would put the key under its node once more."""
    try:
        yield
    except (ConfigError, InstantiationException) as exc:
        error = located_error(exc, cfg, key)
        if error is None:
            raise
        if isinstance(error, ConfigError):  # a new one, with the full key
            raise error from exc
        raise error from error.__cause__  # a file's error from a constructor, without Hydra's wrapper


def instantiate_node(cfg: Any, key: str, /, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of the node ``key`` of ``cfg`` (``kwargs`` as Hydra takes them); a bad value is a
    ``ConfigError`` naming its full key (``tracker.track_buffer``), wherever the node sits."""
    from hydra.utils import instantiate

    config = _as_config(cfg)
    with config_node(config, key):
        return instantiate(OmegaConf.select(config, key, throw_on_missing=True), **kwargs)
