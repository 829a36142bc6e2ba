"""A lean fake SMS gateway for the benchmarks: the CONTRACT's `POST /messages`, in a process
of its own, recording when each message arrived.

tests/fixtures/gateways.py's FakeSmsGateway (a thread per connection, scriptable) is right for
the tests; here the gateway must not be what limits or delays the notifier, nor share a GIL
with the load generator, so it is one asyncio protocol in a separate process. It validates
what the contract asks of a message, answers 200 ``{"message_id", "status": "accepted"}`` and
gives the first answer again for a repeated ``request_id``. Arrival times are
``time.monotonic()``, the system-wide CLOCK_MONOTONIC on Linux, so the parent process can
compare them with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

E164 = re.compile(r"\+[1-9]\d{7,14}")
BAD = b'{"error": "bad_request"}'


@dataclass(frozen=True)
class Arrival:
    request_id: str
    to: str
    at: float  # time.monotonic() when the whole request was read
    first: bool  # False for a repeated request_id


class Gateway:
    """The state: first answers by request id, and every arrival."""

    def __init__(self) -> None:
        self.answers: dict[str, bytes] = {}
        self.arrivals: list[Arrival] = []
        self.rejected = 0

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        at = time.monotonic()
        message = _valid_message(body) if path.rstrip("/") == "/messages" else None
        if message is None:
            self.rejected += 1
            return 400, BAD
        request_id = message["request_id"]
        answer = self.answers.get(request_id)
        self.arrivals.append(Arrival(request_id, message["to"], at, answer is None))
        if answer is None:
            answer = json.dumps(
                {"message_id": f"msg-{len(self.answers) + 1:08d}", "status": "accepted"}
            ).encode()
            self.answers[request_id] = answer
        return 200, answer


def _valid_message(body: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    strings = ("to", "text", "request_id", "sender")
    if any(not isinstance(message.get(k), str) or not message[k] for k in strings):
        return None
    if not isinstance(message.get("unicode"), bool) or len(message["sender"]) > 11:
        return None
    return message if E164.fullmatch(message["to"]) else None


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, one request at a time per connection (what httpx sends)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        parts = head[0].split(" ")
        status, answer = self.gateway.post(parts[1], body) if parts[0] == "POST" else (400, BAD)
        reason = b" OK" if status == 200 else b" Bad Request"
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 " + str(status).encode() + reason
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(answer)).encode() + b"\r\n\r\n" + answer
        )  # fmt: skip
        return True


async def serve() -> None:
    """Serve on a free port: print it, then answer one command per line of stdin with one
    JSON line on stdout ("count", "arrivals", "stop")."""
    gateway = Gateway()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(gateway), "127.0.0.1", 0)
    _say(server.sockets[0].getsockname()[1])
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while command := (await commands.readline()).decode().strip():
        if command == "count":
            _say([sum(1 for a in gateway.arrivals if a.first), len(gateway.arrivals)])
        elif command == "arrivals":
            _say([[a.request_id, a.to, a.at, a.first] for a in gateway.arrivals])
        elif command == "rejected":
            _say(gateway.rejected)
        elif command == "stop":
            break
    server.close()
    await server.wait_closed()


def _say(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


class GatewayProcess:
    """`python -m bench.fake_gateway` as a child process, asked over its stdin and stdout."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_gateway"],
            cwd=Path(__file__).resolve().parents[1],  # the repository: bench is not installed
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None and self._proc.stdin is not None
        self._out, self._in = self._proc.stdout, self._proc.stdin
        line = self._out.readline()
        if not line:
            raise RuntimeError("the fake SMS gateway did not start")
        self.port = int(json.loads(line))
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def ask(self, command: str) -> Any:
        return await asyncio.to_thread(self._ask, command)

    def _ask(self, command: str) -> Any:
        self._in.write(command.encode() + b"\n")
        self._in.flush()
        line = self._out.readline()
        if not line:
            raise RuntimeError("the fake SMS gateway exited")
        return json.loads(line)

    async def count(self) -> tuple[int, int]:
        """(distinct messages, requests) so far."""
        first, total = await self.ask("count")
        return int(first), int(total)

    async def wait_for(
        self,
        expected: int,
        within: float,
        *,
        stalled_after: float = 20.0,
        every: float = 0.2,
        stall_before_first: bool = True,
    ) -> int:
        """Wait until `expected` distinct messages have come, or none came for
        `stalled_after` seconds (not counted before the first one unless
        `stall_before_first`), or `within` seconds are over; the count reached."""
        deadline = time.monotonic() + within
        count, _ = await self.count()
        progress_at = time.monotonic()
        while count < expected and time.monotonic() < deadline:
            await asyncio.sleep(every)  # polling the gateway's count
            now_count, _ = await self.count()
            if now_count != count:
                count, progress_at = now_count, time.monotonic()
            elif (count or stall_before_first) and time.monotonic() - progress_at > stalled_after:
                break
        return count

    async def arrivals(self) -> list[Arrival]:
        return [Arrival(*row) for row in await self.ask("arrivals")]

    def stop(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                self._in.write(b"stop\n")
                self._in.flush()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._in.close()
        self._out.close()


if __name__ == "__main__":
    asyncio.run(serve())
