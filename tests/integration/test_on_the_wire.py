"""What a real server answers to requests it must refuse on their form: bodies over
MOTCUA_MAX_BODY_BYTES, bodies that are not JSON, request lines the HTTP parser cannot make
sense of, too many requests. Every refusal is a JSON error of the contract's shape.

The three services run as `motcua up` hosts them (one app, SQLite, no broker) under uvicorn
with the CLI's own configuration, in a thread of the test process, on loopback. Requests go
over real sockets, some written by hand: a declared length with no body behind it, or a
chunked body that keeps coming, shows what the server answers before it has read the body.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from services.cli import _uvicorn_config
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import free_port
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.intake.app import IntakeService
from services.notifier.app import NotifierService
from services.tracker.app import TrackerService

CAP = 1024 * 1024  # the default of MOTCUA_MAX_BODY_BYTES
TWENTY_MB = 20 * 1024 * 1024
DEADLINE = 10.0  # generous: what is checked is that an answer comes, not how fast
# One route of each service that takes a body (the tracker has no HTTP routes of its own).
BODY_ROUTES = ["/dossiers", "/procedures", "/sms/receipts", "/postal/callbacks"]
LOOKUPS_PER_MINUTE = 3


@dataclass(frozen=True)
class Served:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The three services in one app under uvicorn, as `motcua up` runs them."""
    folder = tmp_path_factory.mktemp("wire")
    for db in sqlite_template.glob("*.db"):
        shutil.copy(db, folder / db.name)
    settings = Settings(data_dir=folder, public_lookup_per_minute=LOOKUPS_PER_MINUTE)

    def engine(service: str) -> Any:
        return create_engine(f"sqlite+aiosqlite:///{folder}/{service}.db")

    app = build_app(
        [
            IntakeService(settings, engine=engine("intake")),
            TrackerService(settings, engine=engine("tracker"), run_scheduler=False),
            NotifierService(
                settings, engine=engine("notifier"), run_dispatcher=False, run_scheduler=False
            ),
        ]
    )
    port = free_port()
    server = uvicorn.Server(_uvicorn_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)  # polling interval
    try:
        yield Served("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        error = json.loads(self.body)["error"]
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error["message"], str) and error["message"], error
        return error


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One HTTP/1.1 response with a Content-Length, read off the socket."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


async def healthz_answers(served: Served) -> None:
    # httpx's own 5 s read timeout would decide before DEADLINE on a loaded machine.
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await asyncio.wait_for(client.get("/healthz"), DEADLINE)
    assert r.status_code == 200, r.text


def assert_too_large(error: dict[str, Any]) -> None:
    assert error["code"] == "payload_too_large", error
    assert error["field"] == "body", error
    assert str(CAP) in error["message"], f"the message does not name the limit: {error}"


# --- bodies over the cap -----------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(
    served: Served, path: str
) -> None:
    """Only the headers are sent: the 413 comes without the server waiting for the body,
    and before anyone asked for a token."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {served.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {TWENTY_MB}\r\n\r\n".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), DEADLINE)
    finally:
        writer.close()
    assert answer.status == 413, answer
    assert_too_large(answer.error())
    await healthz_answers(served)


async def test_a_chunked_body_is_cut_off_once_it_passes_the_cap(served: Served) -> None:
    """No declared length: the server counts what arrives and answers once the cap is
    passed. The client sends twice the cap and never ends the body, so an answer can only
    come from a server that did not wait for the rest."""
    chunk = b"x" * 64 * 1024
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        writer.write(
            f"POST /dossiers HTTP/1.1\r\nHost: {served.host}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(2 * CAP // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), DEADLINE)
        await healthz_answers(served)  # while this connection is still open mid-body
    finally:
        writer.close()
    assert answer.status == 413, answer
    assert_too_large(answer.error())


async def test_a_twenty_megabyte_body_gets_413_while_healthz_keeps_answering(
    served: Served,
) -> None:
    """httpx sends a whole 20 MB JSON body; the server answers 413 and keeps serving."""
    body = json.dumps({"code": "P1", "name": "x" * TWENTY_MB}).encode()
    statuses: list[int] = []

    async def upload() -> httpx.Response:
        async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
            return await client.post(
                "/procedures", content=body, headers={"Content-Type": "application/json"}
            )

    async def poll_healthz(upload_task: asyncio.Task[httpx.Response]) -> None:
        async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
            while not upload_task.done() or not statuses:
                statuses.append((await client.get("/healthz")).status_code)

    upload_task = asyncio.create_task(upload())
    await asyncio.wait_for(poll_healthz(upload_task), DEADLINE)
    r = await asyncio.wait_for(upload_task, DEADLINE)
    assert r.status_code == 413, r.text[:300]
    assert_too_large(r.json()["error"])
    assert statuses and set(statuses) == {200}, statuses


async def test_a_body_under_the_cap_is_read_as_usual(served: Served) -> None:
    """Just under 1 MiB is read, parsed and judged on its content (here: no token)."""
    body = json.dumps({"name": "x" * (CAP - 100)}).encode()
    assert len(body) <= CAP
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await client.post(
            "/procedures", content=body, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 401, r.text[:300]


async def test_the_cap_is_read_from_motcua_max_body_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOTCUA_MAX_BODY_BYTES", "1000")
    service = IntakeService(
        Settings(data_dir=tmp_path), engine=create_engine("sqlite+aiosqlite://")
    )
    transport = httpx.ASGITransport(app=build_app([service]))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
        r = await client.post("/procedures", json={"name": "x" * 1000})
    assert r.status_code == 413, r.text
    assert "1000 bytes" in r.json()["error"]["message"]


# --- bodies that are not JSON ------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_a_body_that_is_not_declared_json_gets_415(
    served: Served, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await client.post(path, content=b'{"code": "P1"}', headers=headers)
    assert r.status_code == 415, r.text
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type", error
    assert error["field"] == "Content-Type", error
    assert "application/json" in error["message"], error


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_content_types_are_accepted(served: Served, content_type: str) -> None:
    """Past the media type check, the request is judged as usual: here, on its token."""
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await client.post(
            "/procedures", content=b'{"code": "P1"}', headers={"Content-Type": content_type}
        )
    assert r.status_code == 401, r.text


async def test_an_action_without_a_body_needs_no_content_type(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await client.post("/dossiers/X-1/start")
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_invalid_json_is_a_400_json_error(served: Served, path: str) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        r = await client.post(
            path, content=b'{"code": "P1",', headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "malformed_json" and error["field"] == "body", error


# --- what the HTTP parser refuses --------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/dossiers?cursor=MTA 3",  # a space pasted into a cursor
        "/dossiers?cursor=MTA\u00e93".encode(),  # a raw non-ASCII character (UTF-8)
        b"/public/dossiers/AG\x01A?phone=0912345678",  # a raw control character
    ],
)
async def test_a_request_line_the_parser_refuses_gets_a_json_400(
    served: Served, target: bytes
) -> None:
    """uvicorn answers these itself, before any app sees them; the answer is still JSON."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), DEADLINE)
    finally:
        writer.close()
    assert answer.status == 400, answer
    error = answer.error()
    assert error["code"] == "malformed_request", error
    await healthz_answers(served)


# --- too many requests -------------------------------------------------------------------


async def test_every_429_carries_retry_after(served: Served) -> None:
    statuses = []
    async with httpx.AsyncClient(base_url=served.url, timeout=DEADLINE) as client:
        for _ in range(LOOKUPS_PER_MINUTE + 1):
            r = await client.get("/public/dossiers/X-1", params={"phone": "0912345678"})
            statuses.append(r.status_code)
    assert statuses == [404] * LOOKUPS_PER_MINUTE + [429], statuses
    assert r.json()["error"]["code"] == "rate_limited"
    retry_after = r.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isascii() and retry_after.isdigit(), r.headers
    assert 1 <= int(retry_after) <= 60, retry_after
