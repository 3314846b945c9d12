"""The review task (``samqa-review``, ``api.review``): serve a finished run's labels on the review page for a person to
fix (a box, a removal, two identities swapped from a frame to the end). Each fix is journaled in the label store and
the label files and report are rebuilt from it, so ``samqa-export`` and training see the fixed labels."""

from __future__ import annotations

import json
import logging
import secrets
import threading
from pathlib import Path

from omegaconf import DictConfig

from samqa_framework.annotate.export import label_set_dirs
from samqa_framework.annotate.label_set import read_sequence_record
from samqa_framework.annotate.review.app import build_app
from samqa_framework.annotate.review.server import PageServer
from samqa_framework.annotate.review.session import ReviewSession
from samqa_framework.annotate.runner import finish_labels
from samqa_framework.annotate.store import LabelStore
from samqa_framework.data.sequence import Sequence
from samqa_framework.utils.errors import ConfigError

log = logging.getLogger(__name__)


def open_review(labels_dir: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                max_body_bytes: int = 65536) -> tuple[ReviewSession, PageServer, str]:
    """Serve one label set for review; returns the session, the running server and the page's URL (with token).
    Label files are rebuilt first when corrections were journaled after them (a review killed mid-rebuild)."""
    sequence, total = read_sequence_record(labels_dir)
    store = LabelStore.read(labels_dir, lock=True)
    try:
        return _serve(store, labels_dir, sequence, total, host, port, token, max_body_bytes)
    except BaseException:
        store.close()
        raise


def _serve(store: LabelStore, labels_dir: Path, sequence: Sequence, total: int, host: str, port: int,
           token: str | None, max_body_bytes: int) -> tuple[ReviewSession, PageServer, str]:
    report = labels_dir / "label_quality.json"
    method = json.loads(report.read_text(encoding="utf-8")).get("method", "labels") if report.is_file() else "labels"

    def rebuild() -> None:
        finish_labels(store, sequence, method, total)

    if store.corrections():
        rebuild()
    session = ReviewSession(store, sequence, total, live=False, rebuild=rebuild)
    token = token or secrets.token_urlsafe(24)
    server = PageServer(build_app(session, token, max_body_bytes), host, port)
    return session, server, f"{server.start()}/?token={token}"


def review(cfg: DictConfig, stop: threading.Event | None = None) -> Path:
    """Serve ``cfg.labels`` (a samqa-annotate run's labels folder with one label set, or the one named by
    ``cfg.sequence``) until Ctrl-C, ``stop`` is set or ``cfg.serve_seconds`` pass; returns the label set's folder."""
    dirs = label_set_dirs(Path(cfg.labels), [cfg.sequence] if cfg.get("sequence") else None)
    if len(dirs) > 1:
        raise ConfigError("sequence", f"{cfg.labels} holds {len(dirs)} label sets; name one of "
                          f"{[d.name for d in dirs]}")
    session, server, url = open_review(dirs[0], str(cfg.host), int(cfg.port), cfg.get("token"),
                                       int(cfg.max_body_bytes))
    print(f"review page for {dirs[0]}: {url}\n(Ctrl-C stops it; every fix is already saved)", flush=True)
    stop = stop or threading.Event()
    try:
        stop.wait(None if cfg.get("serve_seconds") is None else float(cfg.serve_seconds))
    except KeyboardInterrupt:
        log.info("review stopped")
    finally:
        session.close()
        server.stop()
        session.store.close()
    return dirs[0]
