"""A cap on the size of request bodies (MOTCUA_MAX_BODY_BYTES), enforced before they are read.

Without it a client could post 75 MB: FastAPI buffers the whole body, then parses it, and the
one process of `motcua up` stopped answering for seconds while its memory grew to 2 GB.

A plain ASGI middleware rather than BaseHTTPMiddleware: it has to see the body as it streams
in and answer while the client is still sending. A declared Content-Length over the cap is
refused at once, before routing, authentication or any read. A body of unknown length
(chunked) is counted as it arrives and refused as soon as the count passes the cap; the app
is then told the client has gone, and whatever it answers is dropped. Either way nothing
past the cap is buffered: uvicorn discards the rest of a body whose response is complete,
and keeps the connection, so the client still reads the 413 after sending what it had.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.runtime.http_errors import error_body

_GONE: Message = {"type": "http.disconnect"}


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self.refuse(send)
            return
        await _CountedRequest(self, receive, send).run(scope)

    async def refuse(self, send: Send) -> None:
        message = (
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(MOTCUA_MAX_BODY_BYTES)"
        )
        body = json.dumps(error_body("payload_too_large", message, "body")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _CountedRequest:
    """One request whose body is counted as the app reads it."""

    def __init__(self, limit: BodyLimit, receive: Receive, send: Send) -> None:
        self.limit = limit
        self._receive = receive
        self._send = send
        self.received = 0
        self.started = False  # the app has begun its answer: a 413 can no longer be sent
        self.refused = False  # the 413 is sent: the app's own answer goes nowhere

    async def run(self, scope: Scope) -> None:
        await self.limit.app(scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.refused:
            return _GONE
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        self.received += len(message.get("body", b""))
        if self.received <= self.limit.max_bytes:
            return message
        if not self.started:
            self.refused = True
            await self.limit.refuse(self._send)
        # The app stops reading as if the client had left; it never sees the bytes past the cap.
        return _GONE

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    """The declared length, or None when there is none we can read (then bytes are counted)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
