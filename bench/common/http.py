"""A lean HTTP/1.1 client: the load generator shares the cores with the service it measures,
so it spends as little CPU a request as it can.
"""

from __future__ import annotations

import asyncio
import time

IDLE_REUSE = 2.0  # seconds a keep-alive connection may idle and still be reused


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, no pipelining.

    The load generator shares two cores with the service it measures: this costs a few tens
    of microseconds a request where httpx costs several hundred, so the service gets the CPU.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host = f"127.0.0.1:{port}".encode()
        self._last_used = 0.0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """(status, body). `headers`: extra header lines, each ending in CRLF."""
        if self._stale():
            self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: ".encode()
            + self._host
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + headers
            + b"\r\n"
        )
        try:
            self._writer.write(head + body)
            answer = await self._response(self._reader)
        except BaseException:
            self.close()
            raise
        self._last_used = time.monotonic()
        return answer

    def _stale(self) -> bool:
        # uvicorn closes a connection idle for 5 s (timeout_keep_alive), counted from when it
        # sent the answer: a request written to it would be reset, so a connection idle for
        # a while is not reused (with a margin for a busy client that read late).
        if self._reader is None:
            return False
        return self._reader.at_eof() or time.monotonic() - self._last_used > IDLE_REUSE

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        status = int(line[9:12])
        length, close = 0, False
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b""):
                break
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked responses are not expected here")
        body = await reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def get_once(port: int, path: str) -> tuple[int, bytes]:
    conn = HttpConnection(port)
    try:
        return await asyncio.wait_for(conn.request("GET", path), 5)
    finally:
        conn.close()


def bearer(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode()
