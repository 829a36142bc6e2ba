"""`motcua up` stopped at any moment loses nothing: three `kill -9` rounds under load and one
SIGTERM, on the same data folder, as a district office's one machine would live them.

The bundled broker forgets every record when the process stops. What must hold: every dossier
that got a 201 gets its receipt SMS exactly once, is tracked (the tracker's `deadline.changed`
reaches the intake's read model), a later `complete` texts the citizen, and no dossier exists
that no clerk was answered 201 for. The load posts like a clerks' front end: ten at a time,
each with its own Idempotency-Key, retried with that key after a failure (so a POST cut off by
the kill is answered by the next process).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from services.core.runtime.embedded_broker import free_port
from tests.fixtures.broker import consumer_env, wait_for
from tests.fixtures.faults import FIGURES, Ledger, dossier_body

pytestmark = pytest.mark.faults

MOTCUA = [sys.executable, "-m", "services.cli"]
AGENCY, PROCEDURE = "UBND-Q1", "HT-01"
CONCURRENCY = 10
# (how many 201s the round waits for, how the process is stopped): the table.
ROUNDS = [(120, signal.SIGKILL), (60, signal.SIGKILL), (200, signal.SIGKILL), (150, signal.SIGTERM)]


@dataclass
class Office:
    """One data folder and the `motcua up` process currently serving it."""

    data_dir: Path
    log_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    healthz_seconds: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
        env.update(consumer_env())
        env["MOTCUA_DATA_DIR"] = str(self.data_dir)
        env["MOTCUA_QUIET_HOURS"] = ""  # the SMS must go out whatever the hour the test runs
        return env

    async def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"motcua-{self.starts}.log").open("wb")
        started = time.monotonic()
        self.proc = await asyncio.to_thread(
            subprocess.Popen,
            [*MOTCUA, "up", "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=log,
        )
        log.close()
        await wait_for(self._answers, timeout=60, interval=0.05, message="/healthz answers")
        self.healthz_seconds.append(round(time.monotonic() - started, 2))

    async def _answers(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_tail()
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{self.base}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop(self, how: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(how)
        code = await asyncio.to_thread(self.proc.wait, 60)
        if how == signal.SIGTERM:
            assert code == 0, self.log_tail()
        self.proc = None

    def token(self, role: str, agency: str | None = None) -> dict[str, str]:
        args = [*MOTCUA, "token", "create", "--role", role]
        if agency:
            args += ["--agency", agency]
        done = subprocess.run(args, env=self.env(), capture_output=True, text=True, check=True)
        return {"Authorization": f"Bearer {done.stdout.strip()}"}

    def rows(self, service: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
        with sqlite3.connect(self.data_dir / f"{service}.db", timeout=30) as db:
            return db.execute(sql).fetchall()

    def sms(self) -> list[dict]:  # type: ignore[type-arg]
        path = self.data_dir / "outbox" / "sms.jsonl"
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]

    def log_tail(self) -> str:
        logs = sorted(self.log_dir.glob("motcua-*.log"))
        return logs[-1].read_text(errors="replace")[-4000:] if logs else ""


@dataclass
class FrontEnd:
    """Clerks posting dossiers, each retried with its own key until answered 201."""

    office: Office
    clerk: dict[str, str]
    accepted: dict[str, dict] = field(default_factory=dict)  # type: ignore[type-arg]
    next_n: int = 0
    unanswered: list[int] = field(default_factory=list)  # cut off by a stop: posted again

    async def post_until(self, answers: int) -> None:
        """Post until `answers` more dossiers got their 201, then return with some posts
        still in flight (they are cut off by the stop that follows)."""
        target = len(self.accepted) + answers
        queue = list(self.unanswered)
        self.unanswered.clear()
        reached = asyncio.Event()
        in_flight: set[int] = set()

        async def clerk(client: httpx.AsyncClient) -> None:
            while not reached.is_set():
                n = queue.pop(0) if queue else self._new()
                in_flight.add(n)
                if await self._post(client, n):
                    in_flight.discard(n)
                if len(self.accepted) >= target:
                    reached.set()

        async with httpx.AsyncClient(base_url=self.office.base, timeout=30) as client:
            clerks = [asyncio.create_task(clerk(client)) for _ in range(CONCURRENCY)]
            await reached.wait()
            for task in clerks:  # leave the other posts where they are
                task.cancel()
            await asyncio.gather(*clerks, return_exceptions=True)
        self.unanswered = sorted(in_flight | set(queue))

    async def finish(self) -> None:
        """Post every unanswered dossier again until each has its 201."""
        async with httpx.AsyncClient(base_url=self.office.base, timeout=30) as client:
            for n in self.unanswered:
                for _ in range(300):  # a minute of retries at most
                    if await self._post(client, n):
                        break
                    await asyncio.sleep(0.2)  # a front end's pause before it retries
                else:
                    raise AssertionError(f"dossier {n} never accepted")
        self.unanswered.clear()

    def _new(self) -> int:
        self.next_n += 1
        return self.next_n

    async def _post(self, client: httpx.AsyncClient, n: int) -> bool:
        key = f"restart-{n}"
        try:
            r = await client.post(
                "/dossiers",
                json=dossier_body(n),
                headers={**self.clerk, "Idempotency-Key": key},
            )
        except httpx.TransportError:
            return False
        if r.status_code == 201:
            self.accepted[key] = r.json()
            return True
        assert r.status_code >= 500, (r.status_code, r.text)  # a 4xx is our bug
        return False


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    office = Office(tmp_path / "var", tmp_path)
    try:
        yield office
    finally:
        if office.proc is not None and office.proc.poll() is None:
            office.proc.kill()
            office.proc.wait()


async def test_kill_9_three_times_and_sigterm_lose_nothing(office: Office) -> None:
    admin = office.token("admin")
    await office.start()
    async with httpx.AsyncClient(base_url=office.base, headers=admin) as client:
        r = await client.post(
            "/procedures",
            json={"code": PROCEDURE, "name": "Đăng ký khai sinh", "agency_code": AGENCY,
                  "time_limit": {"value": 3, "unit": "working_days"}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    front = FrontEnd(office, office.token("clerk", AGENCY))

    for answers, how in ROUNDS:
        await front.post_until(answers)
        await office.stop(how)
        await office.start()
    await front.finish()
    accepted = {d["id"]: d for d in front.accepted.values()}
    settling = time.monotonic()

    # Every stage catches up on the last start, from what the databases kept.
    def untracked() -> set[str]:
        tracked = {r[0] for r in office.rows("tracker", "SELECT dossier_id FROM tracker_dossiers")}
        return set(accepted) - tracked

    def unprojected() -> set[str]:
        # The read model heard back from the tracker: deadline.changed set its version.
        seen = office.rows("intake", "SELECT id FROM intake_dossiers WHERE deadline_version > 0")
        return set(accepted) - {r[0] for r in seen}

    def receipts() -> Counter[str]:
        texts = [m["text"] for m in office.sms()]
        codes = {d["code"]: d["id"] for d in accepted.values()}
        return Counter(codes[c] for t in texts for c in codes if c in t)

    async def settled() -> bool:
        return not untracked() and not unprojected() and len(receipts()) >= len(accepted)

    try:
        await wait_for(settled, timeout=180, interval=0.5, message="every stage caught up")
    finally:
        sms = office.sms()
        FIGURES.append(
            Ledger(
                fault="motcua up: kill -9 x3 and SIGTERM under load",
                dossiers_sent=len(accepted),
                dossiers_in=office.rows("intake", "SELECT count(*) FROM intake_dossiers")[0][0],
                events_published=len(accepted) - len(unprojected()),
                event_records=0,
                tracked=len(accepted) - len(untracked()),
                notices=len(receipts()),
                sms_sent=len(sms),
                gateway_requests=len(sms),
                post_retries=0,
                load_seconds=0,
                settle_seconds=round(time.monotonic() - settling, 1),
            )
        )

    # No dossier half-exists: each one in the intake was answered 201 to a clerk.
    stored = {r[0] for r in office.rows("intake", "SELECT id FROM intake_dossiers")}
    assert stored == set(accepted)
    # Exactly one receipt SMS per dossier, and no request id twice at the gateway.
    assert set(receipts().values()) == {1}, receipts().most_common(3)
    request_ids = Counter(m["request_id"] for m in office.sms())
    assert [rid for rid, n in request_ids.items() if n > 1] == []
    assert len(office.sms()) == len(accepted)
    # A later action still reaches the citizen: the clocks exist and the pipeline flows.
    sample = [d for d in front.accepted.values()][:: max(1, len(accepted) // 12)]
    async with httpx.AsyncClient(base_url=office.base, headers=front.clerk) as client:
        for dossier in sample:
            r = await client.post(f"/dossiers/{dossier['code']}/complete", json={})
            assert r.status_code == 200, r.text

    def texted_done() -> bool:
        codes = [d["code"] for d in sample]
        per_code = Counter(c for m in office.sms() for c in codes if c in m["text"])
        return all(per_code[c] == 2 for c in codes)

    await wait_for(
        lambda: asyncio.to_thread(texted_done), timeout=60, interval=0.5, message="result SMS"
    )
    await office.stop(signal.SIGTERM)
    print(f"\nmotcua up: /healthz after {office.healthz_seconds} s on each start")
