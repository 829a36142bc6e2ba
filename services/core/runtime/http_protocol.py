"""uvicorn's HTTP/1.1 protocol, with its own refusals in the contract's error shape.

uvicorn answers a request it cannot parse by itself, before any app sees it, with a plain-text
"Invalid HTTP request received." (400): a space or a raw non-ASCII or control byte in the
request line (a cursor pasted with its percent-encoding undone), a malformed header. Clients
of the API expect every 4xx as {"error": {...}}; this protocol sends that 400 as JSON.
`motcua` passes it to uvicorn (services.cli) for every service it serves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from services.core.runtime.http_errors import error_body

_MESSAGE = (
    "the request could not be parsed as HTTP: spaces, control and non-ASCII characters "
    "in the URL must be percent-encoded"
)


class _JsonBadRequest:
    """Replaces uvicorn's send_400_response; the connection is closed after it, as uvicorn's."""

    transport: asyncio.Transport
    server_state: Any

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(error_body("malformed_request", _MESSAGE)).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:  # server, date
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class JsonErrorsH11Protocol(_JsonBadRequest, H11Protocol):
    pass


JsonErrorsHttpProtocol: type[asyncio.Protocol] = JsonErrorsH11Protocol
try:  # uvicorn's own choice ("auto"): httptools when it is installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class JsonErrorsHttpToolsProtocol(_JsonBadRequest, HttpToolsProtocol):
        pass

    JsonErrorsHttpProtocol = JsonErrorsHttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools on CPython
    pass
