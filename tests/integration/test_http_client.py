"""The providers' HTTP client (adapters.http_calls: HttpClient, send_json) against small HTTP
servers on loopback that misbehave on purpose: what reaches the wire, connection reuse, and
each way of getting no answer mapped to the verdict (and the error string) it had with httpx.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from services.notifier.adapters.http_calls import (
    Answer,
    HttpClient,
    Verdict,
    classify,
    send_json,
)

BODY = {"to": "+84912345678", "text": "Hồ sơ đã được tiếp nhận", "request_id": "n-1"}
OK = b'{"message_id": "m-1", "status": "accepted"}'

Reply = Callable[["Request", asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class Request:
    line: str  # "POST /messages HTTP/1.1"
    headers: dict[str, str]  # names lower-cased
    body: bytes
    connection: int  # which connection it came on, from 1


@dataclass
class Loopback:
    """An HTTP/1.1 server on 127.0.0.1 whose answer to each request is `reply`."""

    reply: Reply
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by each request
    handlers: set[asyncio.Task[None]] = field(default_factory=set)  # one a connection

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                line, *rest = head.decode("latin-1").split("\r\n")
                headers = {}
                for header in rest:
                    name, _, value = header.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(line, headers, body, connection)
                self.requests.append(request)
                self.arrived.set()
                await self.reply(request, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def loopback() -> AsyncIterator[Callable[[Reply], Awaitable[Loopback]]]:
    started: list[Loopback] = []

    async def start(reply: Reply) -> Loopback:
        server = Loopback(reply)
        server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.server is not None
        server.server.close()
        for handler in server.handlers:  # a hanging one would outlive the test
            handler.cancel()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    yield http
    await http.aclose()


def answer(status: int, body: bytes = OK, headers: str = "") -> Reply:
    async def reply(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return reply


async def hang(_: Request, writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()  # no answer, ever: cancelled when the test ends


async def close_without_answer(_: Request, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def reset(_: Request, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()  # SO_LINGER 0: a RST, not a FIN


async def not_http(_: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    writer.close()


async def half_a_body(_: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"message_id"')
    await writer.drain()
    writer.close()


# -- on the wire ----------------------------------------------------------------------------


async def test_a_post_carries_compact_utf8_json_as_httpx_sent_it(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(200))

    got = await send_json(client, server.url + "/messages", BODY, 5.0, headers={"Token": "t-1"})

    assert isinstance(got, Answer) and got.status_code == 200 and got.json()["message_id"] == "m-1"
    [request] = server.requests
    assert request.line == "POST /messages HTTP/1.1"
    assert request.body == json.dumps(BODY, ensure_ascii=False, separators=(",", ":")).encode()
    assert "Hồ sơ".encode() in request.body  # the diacritics as UTF-8, not \u escapes
    assert request.headers["content-type"] == "application/json"
    assert request.headers["token"] == "t-1"


async def test_a_get_has_no_body_and_keeps_its_query(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(200, b'{"data": []}'))

    got = await send_json(
        client, server.url + "/v2/categories/listProvinceById?provinceId=-1", None, 5.0,
        method="GET",
    )  # fmt: skip

    assert isinstance(got, Answer) and got.json() == {"data": []}
    [request] = server.requests
    assert request.line == "GET /v2/categories/listProvinceById?provinceId=-1 HTTP/1.1"
    assert request.body == b"" and "content-type" not in request.headers


async def test_calls_one_after_another_reuse_one_connection(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(200))

    for _ in range(3):
        assert isinstance(await send_json(client, server.url + "/messages", BODY, 5.0), Answer)

    assert [r.connection for r in server.requests] == [1, 1, 1]


async def test_a_connection_the_provider_closed_is_not_reused(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(200, headers="Connection: close\r\n"))

    for _ in range(2):
        assert isinstance(await send_json(client, server.url + "/messages", BODY, 5.0), Answer)

    assert [r.connection for r in server.requests] == [1, 2]


async def test_a_redirect_is_an_answer_not_followed(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(301, b"", headers="Location: /elsewhere\r\n"))

    got = await send_json(client, server.url + "/messages", BODY, 5.0)

    assert isinstance(got, Answer)
    assert classify(got, "message_id") == Verdict("retry", error="HTTP 301")
    assert len(server.requests) == 1


async def test_headers_are_read_whatever_their_case(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(answer(429, b"", headers="RETRY-AFTER: 7\r\n"))

    got = await send_json(client, server.url + "/messages", BODY, 5.0)

    assert isinstance(got, Answer)
    assert classify(got, "message_id") == Verdict(
        "retry", error="HTTP 429", retry_after_seconds=7.0
    )


# -- no answer --------------------------------------------------------------------------------


async def test_no_answer_in_time_is_a_read_timeout_that_may_have_been_taken(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(hang)

    got = await send_json(client, server.url + "/messages", BODY, 0.3)

    assert got == Verdict("retry", error="timeout (ReadTimeout)", maybe_taken=True)
    assert len(server.requests) == 1  # it was sent: the provider may have it


async def test_no_connection_free_in_time_is_a_connect_timeout(
    loopback: Callable[[Reply], Awaitable[Loopback]],
) -> None:
    server = await loopback(hang)
    one = HttpClient(max_connections=1)
    try:
        held = asyncio.create_task(send_json(one, server.url + "/messages", BODY, 5.0))
        await asyncio.wait_for(server.arrived.wait(), 5)  # the only connection is taken
        got = await send_json(one, server.url + "/messages", BODY, 0.3)
        held.cancel()
    finally:
        await one.aclose()

    assert got == Verdict("retry", error="timeout (ConnectTimeout)", maybe_taken=True)
    assert len(server.requests) == 1


async def test_a_refused_connection_is_a_connect_error_not_taken(client: HttpClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the probe is closed

    got = await send_json(client, f"http://127.0.0.1:{port}/messages", BODY, 5.0)

    assert got == Verdict("retry", error="transport error (ConnectError)")


@pytest.mark.parametrize("reply", [close_without_answer, not_http, half_a_body])
async def test_an_answer_cut_short_or_not_http_is_a_remote_protocol_error(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient, reply: Reply
) -> None:
    server = await loopback(reply)

    got = await send_json(client, server.url + "/messages", BODY, 5.0)

    assert got == Verdict("retry", error="transport error (RemoteProtocolError)")


async def test_a_reset_connection_is_a_transport_error_to_retry(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    server = await loopback(reset)

    got = await send_json(client, server.url + "/messages", BODY, 5.0)

    assert isinstance(got, Verdict) and got.outcome == "retry" and not got.maybe_taken
    assert got.error in (
        "transport error (ReadError)",  # the reset read as such
        "transport error (RemoteProtocolError)",  # or as the connection closing first
    )


async def test_after_a_failed_call_the_next_one_gets_through(
    loopback: Callable[[Reply], Awaitable[Loopback]], client: HttpClient
) -> None:
    replies: list[Reply] = [close_without_answer, answer(200)]

    async def in_turn(request: Request, writer: asyncio.StreamWriter) -> None:
        await replies.pop(0)(request, writer)

    server = await loopback(in_turn)

    first = await send_json(client, server.url + "/messages", BODY, 5.0)
    second = await send_json(client, server.url + "/messages", BODY, 5.0)

    assert isinstance(first, Verdict) and isinstance(second, Answer)
    assert second.status_code == 200


# -- the environment's proxy ----------------------------------------------------------------


async def test_the_environments_proxy_carries_the_calls_as_with_httpx(
    loopback: Callable[[Reply], Awaitable[Loopback]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await loopback(answer(200))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("http_proxy", raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = HttpClient()
    try:
        got = await send_json(client, "http://sms-gateway.invalid/messages", BODY, 5.0)
    finally:
        await client.aclose()

    assert isinstance(got, Answer) and got.status_code == 200
    [request] = proxy.requests
    assert request.line == "POST http://sms-gateway.invalid/messages HTTP/1.1"


async def test_no_proxy_names_the_hosts_reached_directly(
    loopback: Callable[[Reply], Awaitable[Loopback]], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await loopback(answer(500))
    gateway = await loopback(answer(200))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    for name in ("http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    client = HttpClient()
    try:
        got = await send_json(client, gateway.url + "/messages", BODY, 5.0)
    finally:
        await client.aclose()

    assert isinstance(got, Answer) and got.status_code == 200
    assert proxy.requests == [] and len(gateway.requests) == 1


async def test_a_closed_client_refuses_calls() -> None:
    client = HttpClient()
    await client.aclose()

    assert client.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        await send_json(client, "http://127.0.0.1:1/messages", BODY, 1.0)
