"""The review page's HTTP routes (Starlette). Every request needs the session's token (403 otherwise); bodies are
capped (413) and checked (400 with the reason); frames are named by number only, never by a path; every response
carries a strict Content-Security-Policy.

    GET  /                     the page          GET /static/{app.js,app.css}
    GET  /api/state            sizes, mode, palette, frames stored
    GET  /api/question?after=F&wait=S   the open question after frame F (long poll; 204 when none came)
    POST /api/answer           {"frame": F, "boxes": [{"id": 1, "box": [x1, y1, x2, y2]}, ...]}
    GET  /api/board            the timeline           GET /api/labels?frame=F      a frame's labels (corrected)
    GET  /api/frame.jpg?frame=F                        the frame, masks tinted
    POST /api/correct          {"op": "box" | "remove" | "swap", ...} (samqa-review only)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from samqa_framework.annotate.base import FrameLabels
from samqa_framework.annotate.review.images import frame_jpeg
from samqa_framework.annotate.review.session import NotAllowed, ReviewSession
from samqa_framework.data.preview import PALETTE

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store"), (b"x-frame-options", b"DENY")]
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}  # the only files the page may ask for
MAX_WAIT = 30.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class Guard:
    """ASGI middleware: the token on every request, the body cap, the security headers on every response."""

    def __init__(self, app: ASGIApp, token: str, max_body_bytes: int) -> None:
        self.app, self.token, self.max_body = app, token, max_body_bytes

    def _token(self, scope: Scope) -> str:
        for name, value in scope.get("headers", []):
            if name == b"x-samqa-token":
                return value.decode("latin-1")
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])
        return values[0]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        if not secrets.compare_digest(self._token(scope).encode(), self.token.encode()):
            await _plain(send_with_headers, 403,
                         "forbidden: the page's token is missing or wrong (use the printed URL)")
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _plain(send_with_headers, 413, f"request body over {self.max_body} bytes")
            return
        body = b""  # read here, whole (it is small), so a chunked body over the cap is refused too
        more = scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _plain(send_with_headers, 413, f"request body over {self.max_body} bytes")
                return
            more = message.get("more_body", False)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


async def _plain(send: Callable[[Message], Awaitable[None]], status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _bad(reason: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"query parameter {name!r} is missing")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be an integer, got {raw!r}") from None


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise ValueError(f"the body is not valid JSON ({exc})") from None


def _instances(labels: FrameLabels | None) -> list[dict[str, Any]]:
    return [{"id": i.track_id, "box": [round(float(v), 2) for v in i.box], "source": i.source,
             "score": round(float(i.score), 3)} for i in (labels.instances if labels is not None else [])]


def build_app(session: ReviewSession, token: str, max_body_bytes: int) -> ASGIApp:
    """The page's ASGI app for ``session``, guarded by ``token`` and the body cap."""

    def page(request: Request) -> Response:
        html = (resources.files(__package__) / "static" / "index.html").read_text(encoding="utf-8")
        return Response(html.replace("__TOKEN__", token), media_type="text/html; charset=utf-8")

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return _bad("not found", 404)
        return Response((resources.files(__package__) / "static" / name).read_bytes(), media_type=STATIC[name])

    def state(request: Request) -> Response:
        return JSONResponse({"mode": "live" if session.live else "review", "sequence": session.sequence.name,
                             "width": session.width, "height": session.height, "total": session.total,
                             "stored": session.store.count(), "palette": PALETTE, "closed": session.closed})

    def question(request: Request) -> Response:  # sync: Starlette runs it in a worker thread while it waits
        try:
            after = _int_param(request, "after", 0)
            wait = min(max(_int_param(request, "wait", 10), 0), MAX_WAIT)
        except ValueError as exc:
            return _bad(str(exc))
        q = session.question(after, wait)
        if q is None:
            return Response(status_code=204)
        previous = session.store.record(q.frame - 1) if q.frame > 1 else None
        proposed = q.proposed
        return JSONResponse({"frame": q.frame, "proposed": _instances(proposed), "previous": _instances(previous),
                             "failed": {str(k): v for k, v in (proposed.failed if proposed else {}).items()}})

    async def answer(request: Request) -> Response:
        try:
            body = await _json_body(request)
            if not isinstance(body, dict) or not isinstance(body.get("frame"), int):
                raise ValueError('expected {"frame": <int>, "boxes": [{"id": <int>, "box": [x1, y1, x2, y2]}, ...]}')
            boxes = await run_in_threadpool(session.answer, body["frame"], body.get("boxes"))
        except NotAllowed as exc:
            return _bad(str(exc), 409)
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"frame": body["frame"], "boxes": len(boxes)})

    def board(request: Request) -> Response:
        return JSONResponse(session.board())

    def labels(request: Request) -> Response:
        try:
            frame = _int_param(request, "frame")
            found = session.labels(frame)
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"frame": frame, "stored": found is not None, "instances": _instances(found),
                             "failed": {str(k): v for k, v in (found.failed if found else {}).items()}})

    def frame_image(request: Request) -> Response:
        try:
            image, drawn = session.image(_int_param(request, "frame"))
        except ValueError as exc:
            return _bad(str(exc))
        return Response(frame_jpeg(image, drawn), media_type="image/jpeg")

    async def correct(request: Request) -> Response:
        try:
            entry = await run_in_threadpool(session.correct, await _json_body(request))
        except NotAllowed as exc:
            return _bad(str(exc), 409)
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse(entry)

    app = Starlette(routes=[
        Route("/", page), Route("/static/{name}", static), Route("/api/state", state),
        Route("/api/question", question), Route("/api/answer", answer, methods=["POST"]),
        Route("/api/board", board), Route("/api/labels", labels), Route("/api/frame.jpg", frame_image),
        Route("/api/correct", correct, methods=["POST"]),
    ])
    return Guard(app, token, max_body_bytes)
