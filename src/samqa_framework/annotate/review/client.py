"""The oracle answering on the review page's HTTP API (``prompts.answer_by=oracle``): experiments go through the same
path a person's answers take."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np


class OracleClient:
    """A thread that long-polls ``/api/question`` and posts ``boxes_of(frame)`` to ``/api/answer``."""

    def __init__(self, url: str, token: str, boxes_of: Callable[[int], dict[int, np.ndarray]],
                 on_error: Callable[[str], None] | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.token, self.boxes_of = parts.hostname or "127.0.0.1", parts.port, token, boxes_of
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-oracle", daemon=True)
        self.on_error = on_error  # told why the oracle stopped answering (the waiting annotation must not hang)
        self.error: BaseException | None = None
        # per answer: post_s (the answer's request), wait_s (from the answer to the next question)
        self.round_trips: list[dict[str, float]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _request(self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
                 ) -> tuple[int, bytes]:
        conn.request(method, path, body=body, headers={"X-Samqa-Token": self.token,
                                                       "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        after, answered_at = 0, None
        try:
            while not self._stop.is_set():
                status, data = self._request(conn, "GET", f"/api/question?after={after}&wait=1")
                if status == 204:
                    continue
                if status != 200:
                    raise RuntimeError(f"review page answered {status}: {data[:200]!r}")
                frame = int(json.loads(data)["frame"])
                shown = time.perf_counter()
                boxes = self.boxes_of(frame)
                body = json.dumps({"frame": frame, "boxes": [{"id": int(i), "box": [float(v) for v in b]}
                                                             for i, b in sorted(boxes.items())]}).encode()
                sent = time.perf_counter()
                if answered_at is not None:
                    self.round_trips[-1]["wait_s"] = shown - answered_at
                status, data = self._request(conn, "POST", "/api/answer", body)
                if status != 200:
                    raise RuntimeError(f"review page refused the oracle's answer ({status}): {data[:200]!r}")
                answered_at = time.perf_counter()
                self.round_trips.append({"frame": frame, "post_s": answered_at - sent})
                after = frame
        except (OSError, http.client.HTTPException, RuntimeError) as exc:
            if not self._stop.is_set():
                self.error = exc
                if self.on_error is not None:
                    self.on_error(f"the oracle stopped answering: {exc}")
        finally:
            conn.close()
