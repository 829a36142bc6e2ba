"""`motcua up` as a user runs it: one command, its own broker, SQLite files, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.core.runtime.embedded_broker import free_port, port_is_free
from services.core.runtime.version import motcua_version
from tests.fixtures.broker import consume, consumer_env
from tests.fixtures.metrics import scrape

MOTCUA = [sys.executable, "-m", "services.cli"]


def _wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.1)  # polling interval


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _up_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(consumer_env())
    # The SMS must go out whatever the hour the test runs at (21:00-07:00 is quiet by default).
    env["MOTCUA_QUIET_HOURS"] = ""
    return env


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path, Path]]:
    port = free_port()
    env = _up_env()
    env["MOTCUA_DATA_DIR"] = str(tmp_path / "var")
    log_path = tmp_path / "motcua.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*MOTCUA, "up", "--port", str(port)], env=env, stdout=log_file, stderr=log_file
        )
        try:
            _wait_until(lambda: _ready(port) or proc.poll() is not None, 60, "readiness")
            assert proc.poll() is None, log_path.read_text()
            yield proc, port, tmp_path / "var", log_path
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_up_records_a_dossier_publishes_it_and_stops_cleanly(running) -> None:  # type: ignore[no-untyped-def]
    proc, port, data_dir, log_path = running
    env = {**os.environ, "MOTCUA_DATA_DIR": str(data_dir)}
    created = await asyncio.to_thread(
        subprocess.run,
        [*MOTCUA, "token", "create", "--role", "admin"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = created.stdout
    assert token.startswith("mc_") and len(token.strip().splitlines()) == 1
    auth = {"Authorization": f"Bearer {token.strip()}"}
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=auth) as client:
        r = await client.post(
            "/procedures",
            json={"code": "HT-01", "name": "Đăng ký khai sinh", "agency_code": "UBND-P1",
                  "time_limit": {"value": 3, "unit": "working_days"}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        r = await client.post(
            "/dossiers",
            json={"procedure_code": "HT-01", "channel": "counter", "return_method": "counter",
                  "applicant": {"full_name": "Lê Văn C", "phone": "0987654321"}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        dossier = r.json()
        assert (await client.get("/openapi.json")).status_code == 200
        index = (await client.get("/")).json()  # the bare address says where to go
        assert index["name"] == "motcua" and index["version"] == motcua_version()
        assert index["links"]["api_docs"] == "/docs"
        assert set(index["services"]) >= {"intake"}
        ready = (await client.get("/readyz")).json()
        for service in ("intake", "tracker", "notifier"):
            for check in ("database", "broker", "consumers"):
                assert ready["checks"][f"{service}.{check}"] is True, ready

    assert (data_dir / "intake.db").exists()
    started = [
        json.loads(line)
        for line in log_path.read_text().splitlines()
        if '"embedded_broker_started"' in line
    ]
    bootstrap = started[0]["bootstrap"]
    records = await consume(
        bootstrap, "motcua.dossier.v1", until=lambda rs: len(rs) >= 1, timeout=30
    )
    envelope = json.loads(records[0].value)
    assert records[0].key.decode() == dossier["id"]
    assert envelope["type"] == "dossier.received"
    assert envelope["dossier_code"] == dossier["code"]
    # The tracker runs beside it (a second process): it took the receipt, published its deadline.
    deadlines = await consume(
        bootstrap, "motcua.deadline.v1", until=lambda rs: len(rs) >= 1, timeout=60
    )
    changed = json.loads(deadlines[0].value)
    assert changed["type"] == "deadline.changed"
    assert changed["dossier_id"] == dossier["id"]
    assert changed["payload"]["due_at"] == dossier["due_at"]
    assert (data_dir / "tracker.db").exists()
    # The notifier too: without a gateway URL its SMS is a JSON line in the data folder.
    sms_file = data_dir / "outbox" / "sms.jsonl"

    def texted() -> bool:
        return sms_file.exists() and dossier["code"] in sms_file.read_text(encoding="utf-8")

    await asyncio.to_thread(_wait_until, texted, 60, "the receipt SMS in outbox/sms.jsonl")
    (line,) = [json.loads(x) for x in sms_file.read_text(encoding="utf-8").splitlines()]
    assert line["to"] == "+84987654321" and line["unicode"] is False
    # One /metrics for the three services, each series under its service.
    async with httpx.AsyncClient(base_url=base) as client:
        got = await scrape(client)
    posted = {"service": "intake", "method": "POST", "route": "/dossiers", "status": "201"}
    assert got.value("motcua_http_request_duration_seconds_count", **posted) == 1
    for service in ("intake", "tracker", "notifier"):
        assert got.has("motcua_outbox_backlog_rows", service=service)
    handled = {"topic": "motcua.dossier.v1", "outcome": "handled"}
    assert got.value("motcua_events_consumed_total", service="tracker", **handled) == 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    broker_port = int(bootstrap.rsplit(":", 1)[1])
    assert port_is_free(port)
    assert port_is_free(broker_port), "the bundled broker must stop with motcua"
    # It said where it is, where its data and texts go, and how to make the first token;
    # every log line, the third parties' too, is JSON (no colour codes mixed in).
    said = log_path.read_text(encoding="utf-8")
    assert f"is up: http://127.0.0.1:{port}/" in said
    assert f"motcua token create --role admin --data-dir {data_dir.resolve()}" in said
    assert str(sms_file.resolve()) in said
    assert "\x1b[" not in said
    for text in said.splitlines():
        if not text.startswith(("motcua ", "  ")):  # the announcement on stdout
            json.loads(text)


@contextlib.contextmanager
def _motcua_up(
    data_dir: Path,
    log_path: Path,
    *,
    killed_in_block: bool = False,
    settings: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`motcua up` on a free port until the block ends (SIGTERM, and a clean exit), or until
    the block kills it (`killed_in_block`); with these MOTCUA_ `settings` too."""
    port = free_port()
    env = {**_up_env(), **(settings or {})}
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [*MOTCUA, "up", "--port", str(port), "--data-dir", str(data_dir)],
            env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
        try:
            _wait_until(lambda: _ready(port) or proc.poll() is not None, 60, "readiness")
            assert proc.poll() is None, log_path.read_text()
            yield port, proc
            if killed_in_block:
                assert proc.poll() == -signal.SIGKILL
            else:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_up_makes_a_callback_token_keeps_it_and_refuses_callbacks_without_it(
    tmp_path: Path,
) -> None:
    data_dir, log_path = tmp_path / "var", tmp_path / "motcua.log"
    forged = {"tracking_code": "LOCAL-UBND-P1-20261116-0001", "status": "delivered"}
    with _motcua_up(data_dir, log_path) as (port, _):
        path = data_dir / "callback_token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        base = f"http://127.0.0.1:{port}"
        for query, status in [("", 401), ("?token=LOCAL", 403), (f"?token={token}", 404)]:
            r = httpx.post(f"{base}/postal/callbacks{query}", json=forged, timeout=10)
            assert r.status_code == status, r.text
            assert r.json()["error"]["field"] == ("token" if status != 404 else "tracking_code")
        receipt = {"message_id": "jsonl-x", "status": "delivered"}
        assert httpx.post(f"{base}/sms/receipts", json=receipt, timeout=10).status_code == 401
    assert token not in log_path.read_text()  # the log says where it is, never what
    with _motcua_up(data_dir, log_path) as (port, _):  # a restart keeps it
        assert path.read_text().strip() == token
        r = httpx.post(
            f"http://127.0.0.1:{port}/sms/receipts?token={token}", json=receipt, timeout=10
        )
        assert r.status_code == 202 and r.json() == {"status": "kept"}


def _a_dossier(client: httpx.Client, procedure: str, agency: str) -> str:
    """A procedure of one working day and a dossier of it, through the API as an admin."""
    r = client.post(
        "/procedures",
        json={"code": procedure, "name": "Chứng thực bản sao", "agency_code": agency,
              "time_limit": {"value": 1, "unit": "working_days"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    r = client.post(
        "/dossiers",
        json={"procedure_code": procedure, "channel": "counter", "return_method": "counter",
              "applicant": {"full_name": "Trần Thị D", "phone": "0912345678"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def test_up_shares_a_link_secret_so_the_returned_sms_opens_the_rating_page(
    tmp_path: Path,
) -> None:
    """Issue 14 item 4: the notifier (in the second process) signs the rating link with the
    secret `motcua up` made, and the intake (in the first) opens it."""
    data_dir, log_path = tmp_path / "var", tmp_path / "motcua.log"
    public = "https://motcua.ubndp1.example.vn"
    settings = {"MOTCUA_PUBLIC_URL": public, "MOTCUA_UP_PROCESSES": "2"}
    with _motcua_up(data_dir, log_path, settings=settings) as (port, _):
        path = data_dir / "link_secret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = path.read_text().strip()
        with _admin_client(port, data_dir) as client:
            code = _a_dossier(client, "HT-01", "UBND-P1")
            for action in ("complete", "return"):
                assert client.post(f"/dossiers/{code}/{action}").status_code == 200
            sms = data_dir / "outbox" / "sms.jsonl"

            def rating_texts() -> list[str]:
                lines = sms.read_text().splitlines() if sms.exists() else []
                return [t for t in (json.loads(x)["text"] for x in lines) if "/danh-gia/" in t]

            _wait_until(rating_texts, 60, "the returned SMS")
            [text] = rating_texts()
            link = text.rsplit(" ", 1)[1]
            assert link.startswith(f"{public}/danh-gia/{code}/")
            page = client.get(link.removeprefix(public))
            assert page.status_code == 200 and "Gửi đánh giá" in page.text, page.text
    assert secret not in log_path.read_text()  # the log says where it is, never what


def _workers_of(parent: int) -> list[int]:
    """The pids of `motcua up`'s second process (the tracker and the notifier)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = []
    for pid in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(OSError):
            if b"workers" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                found.append(int(pid))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _admin_client(port: int, data_dir: Path) -> httpx.Client:
    """A client of `motcua up` on `port` with a new admin's token."""
    created = subprocess.run(
        [*MOTCUA, "token", "create", "--role", "admin", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {created.stdout.strip()}"}
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=30)


def _texted_dossier(port: int, data_dir: Path) -> tuple[httpx.Client, str]:
    """An admin's client of `motcua up` on `port`, and the code of a dossier it received whose
    receipt SMS is in the outbox."""
    client = _admin_client(port, data_dir)
    code = _a_dossier(client, "HT-02", "UBND-P2")
    sms_file = data_dir / "outbox" / "sms.jsonl"
    _wait_until(
        lambda: sms_file.exists() and code in sms_file.read_text(encoding="utf-8"),
        60,
        "the receipt SMS",
    )
    return client, code


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_up_runs_the_tracker_and_notifier_in_a_second_process_that_comes_back(
    tmp_path: Path,
) -> None:
    """On two cores the tracker and the notifier run in a process of their own; killed, it is
    started again and the dossiers go on being tracked and texted; and it dies with `up`."""
    data_dir, log_path = tmp_path / "var", tmp_path / "motcua.log"
    with _motcua_up(data_dir, log_path, killed_in_block=True) as (port, proc):
        (first,) = _workers_of(proc.pid)
        os.kill(first, signal.SIGKILL)
        _wait_until(lambda: first not in _workers_of(proc.pid), 30, "the worker reaped")
        _wait_until(lambda: len(_workers_of(proc.pid)) == 1, 60, "a new worker process")
        _wait_until(lambda: _ready(port), 120, "readiness after the restart")
        client, _ = _texted_dossier(port, data_dir)  # texted by the restarted notifier
        client.close()
        (second,) = _workers_of(proc.pid)
        proc.kill()  # SIGKILL: no chance to stop its children itself
        proc.wait()
        _wait_until(lambda: not _alive(second), 30, "the worker dying with motcua up")


@pytest.mark.parametrize("processes", ["1", "2"])
def test_up_tells_what_was_sent_through_the_notifier_it_runs(
    tmp_path: Path, processes: str
) -> None:
    """GET /dossiers/{code}/notices on `motcua up`: the intake asks the notifier where `up`
    runs it (its own port, or the second process's) with the internal token `up` keeps."""
    data_dir, log_path = tmp_path / "var", tmp_path / "motcua.log"
    with _motcua_up(data_dir, log_path, settings={"MOTCUA_UP_PROCESSES": processes}) as (port, _):
        secret = data_dir / "internal_token"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        client, code = _texted_dossier(port, data_dir)
        try:

            def accepted() -> bool:
                answer = client.get(f"/dossiers/{code}/notices")
                assert answer.status_code == 200, answer.text
                found = answer.json()["notices"]
                return bool(found) and found[0]["status"] == "accepted"

            _wait_until(accepted, 30, "the SMS recorded as accepted")
            (notice,) = client.get(f"/dossiers/{code}/notices").json()["notices"]
            assert notice["recipient"] == "+8491*****78" and notice["template"] == "received"
            # The internal route, without its secret, answers nobody on the public port.
            inner = httpx.get(f"{client.base_url}/internal/dossiers/x/notices", timeout=10)
            assert inner.status_code == (401 if processes == "1" else 404)
        finally:
            client.close()
    assert secret.read_text().strip() not in log_path.read_text()
