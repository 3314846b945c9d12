"""Hydra plumbing shared by every entry point: config location, resolvers, and the task runner."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import Container, DictConfig, ListConfig, OmegaConf

from samqa_framework.utils.errors import ConfigError, SamqaError
from samqa_framework.utils.offline import configure_offline

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"


def register_resolvers() -> None:
    """``${samqa.project_root:}`` and ``${samqa.basename:PATH}``; safe to call more than once."""
    if not OmegaConf.has_resolver("samqa.project_root"):
        OmegaConf.register_new_resolver("samqa.project_root", lambda: str(PROJECT_ROOT))
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
    """Errors of the block's code, given the node ``key`` of ``cfg``, name their full config key
    (:func:`located_error`), e.g. ``with config_node(cfg, "data"): builder.build(root)``. Not nested: the outer
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
