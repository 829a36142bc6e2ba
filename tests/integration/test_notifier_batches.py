"""The notifier applies a run of records in one transaction and records a batch of SMS
outcomes in one transaction, on SQLite and PostgreSQL, deciding exactly what one record or
one SMS at a time decides: the same notices, cards, marks and orders; a duplicate adds
nothing; nothing is half written; an outcome not committed is sent again with the same
request_id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.runtime.consumer import DUPLICATE, PoisonEvent
from services.core.runtime.kafka import DEADLINE_TOPIC, DIRECTORY_TOPIC, DOSSIER_TOPIC
from services.notifier.adapters import repository as repo
from services.notifier.adapters import tables as t
from services.tracker.adapters import tables as tracker_tables
from tests.fixtures.notifier import NotifierHarness

ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP HCM"}
# What the notifier holds, compared between a run and one by one (no row ids, no times that
# differ by construction: every write in both is at the same clock reading).
SNAPSHOT = {
    t.dossiers: ("dossier_id",),
    t.notices: ("id",),
    t.notice_history: ("id",),
    t.postal_orders: ("dossier_id",),
    t.postal_history: ("id",),
    t.alerts: ("dossier_id",),
}


def later(at: str, **delta: float) -> str:
    return (datetime.fromisoformat(at) + timedelta(**delta)).isoformat()


def person(phone: str) -> dict[str, str]:
    return {"full_name": "Trần Thị Bình", "phone": phone, "id_number": "001203004568"}


@pytest.fixture
def n(notifier: NotifierHarness) -> NotifierHarness:
    return notifier


@contextmanager
def commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """Counts the transactions committed on `engine` inside the block."""
    seen: list[int] = []

    def count(conn: Any) -> None:
        seen.append(1)

    sa.event.listen(engine.sync_engine, "commit", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine.sync_engine, "commit", count)


async def snapshot(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    state = {}
    async with engine.connect() as conn:
        for table, order in SNAPSHOT.items():
            rows = await conn.execute(sa.select(table).order_by(*(table.c[k] for k in order)))
            state[table.name] = [
                {k: v for k, v in r._mapping.items() if k != "id" or table is t.notices}
                for r in rows
            ]
    # A notice's seq is a sequence's number, new in each run: what counts is their order.
    by_seq = sorted(state[t.notices.name], key=lambda row: row["seq"])
    for rank, row in enumerate(by_seq):
        row["seq"] = rank
    return state


async def forget_everything(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in SNAPSHOT:
            await conn.execute(table.delete())


async def topic_values(n: NotifierHarness, topic: str) -> list[bytes]:
    """The values the intake (dossier topic) or the tracker (deadline topic) published."""
    if topic == DOSSIER_TOPIC:
        return [v.encode() for tp, v in await n.intake_rows() if tp == topic]
    outbox = tracker_tables.outbox
    query = sa.select(outbox.c.value).where(outbox.c.topic == topic).order_by(outbox.c.id)
    async with n.tracker.engine.connect() as conn:
        return [v.encode() for v in (await conn.execute(query)).scalars()]


async def dossier_story(n: NotifierHarness) -> list[bytes]:
    """Dossier events of three dossiers, several of one dossier, a postal return among them."""
    await n.intake.procedure()
    a = await n.intake.dossier()
    b = await n.intake.dossier(applicant=person("0987654321"))
    c = await n.intake.dossier(return_method="postal", return_address=ADDRESS)
    await n.act(a["code"], "request-supplement", {"items": ["Bản sao CCCD"], "reason": "thiếu"})
    await n.act(b["code"], "reject", {"reason": "Không thuộc thẩm quyền"})
    await n.act(c["code"], "complete")
    await n.act(a["code"], "receive-supplement")
    return await topic_values(n, DOSSIER_TOPIC)


async def test_a_run_decides_exactly_the_notices_of_one_by_one(n: NotifierHarness) -> None:
    events = await dossier_story(n)
    # A duplicate in the middle of the run and one at its end (a redelivery of the first).
    run = [*events[:3], events[1], *events[3:], events[0]]

    one_by_one = [await n.service.on_dossier_event(body) for body in run]
    told = await snapshot(n.engine)
    await forget_everything(n.engine)
    together = await n.service.on_dossier_events(run)

    assert await snapshot(n.engine) == told
    assert list(together) == one_by_one == [None] * 3 + [DUPLICATE] + [None] * 4 + [DUPLICATE]
    templates = [x["template"] for x in await n.notices()]
    assert templates == [
        "received",
        "received",
        "received",
        "supplement_requested",
        "rejected",
        "supplement_received",
    ]
    assert len(told["notifier_postal_orders"]) == 1
    # Told again, every event of the run is a duplicate, and nothing changes.
    assert list(await n.service.on_dossier_events(run)) == [DUPLICATE] * len(run)
    assert await snapshot(n.engine) == told


async def test_a_run_is_one_transaction_and_all_or_nothing(
    n: NotifierHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = await dossier_story(n)

    with pytest.raises(PoisonEvent):  # refused before anything is written
        await n.service.on_dossier_events([*events[:2], b"{not json", *events[2:]])

    async def broken(*args: Any) -> set[str]:
        raise RuntimeError("the notices' insert failed")

    monkeypatch.setattr(repo, "add_notices", broken)
    with pytest.raises(RuntimeError):  # after the cards were written, in the same transaction
        await n.service.on_dossier_events(events)
    assert all(rows == [] for rows in (await snapshot(n.engine)).values())
    monkeypatch.undo()

    with commits(n.engine) as committed:
        await n.service.on_dossier_events(events)
    assert len(committed) == 1
    assert len(await n.notices()) == 6


async def test_a_run_of_deadline_events_marks_and_alerts_as_one_by_one(
    n: NotifierHarness,
) -> None:
    await n.supervisors()
    await n.intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    first = await n.intake.dossier()
    await n.intake.dossier(applicant=person("0987654321"))
    await n.tracker.feed()
    n.intake.clock.advance(hours=20)
    await n.tracker.scan()  # due soon
    await n.act(
        first["code"],
        "extend",
        {"new_due_at": later(first["due_at"], hours=2), "reason": "cần xác minh"},
    )
    await n.tracker.feed()
    n.intake.clock.advance(days=3)
    await n.tracker.scan()  # overdue, each
    dossiers = await topic_values(n, DOSSIER_TOPIC)
    deadlines = await topic_values(n, DEADLINE_TOPIC)
    flags = [b for b in deadlines if b'"deadline.overdue"' in b]
    assert len(flags) == 2 and len(deadlines) > len(flags)
    run = [*deadlines, flags[0], deadlines[0]]  # told twice: an alert and a stale mark
    for topic, value in await n.intake_rows():  # the supervisors (kept by forget_everything)
        if topic == DIRECTORY_TOPIC:
            await n.deliver(topic, value.encode())

    await n.service.on_dossier_events(dossiers)
    one_by_one = [await n.service.on_deadline_event(body) for body in run]
    told = await snapshot(n.engine)
    await forget_everything(n.engine)
    await n.service.on_dossier_events(dossiers)
    together = await n.service.on_deadline_events(run)

    assert await snapshot(n.engine) == told
    assert list(together) == one_by_one
    assert len(told["notifier_alerts"]) == 2  # a flag each, waiting to be told
    assert {c["flag"] for c in told["notifier_dossiers"]} == {"overdue"}
    n.intake.clock.advance(minutes=5)
    await n.dispatch()
    alerts = await n.notices(template="overdue_alert")
    assert len(alerts) == 4  # two supervisors, two dossiers, once each
    assert (await snapshot(n.engine))["notifier_alerts"] == []


async def sms_statuses(n: NotifierHarness) -> list[str]:
    return sorted(x["status"] for x in await n.notices())


async def test_a_batch_of_sms_outcomes_is_recorded_in_one_transaction(n: NotifierHarness) -> None:
    await n.intake.procedure()
    for k in range(6):
        await n.intake.dossier(applicant=person(f"09123456{k:02d}"))
    await n.feed()
    n.sms.fail_next(503, retry_after=30)
    n.sms.reject_next(400, "invalid_number")

    with commits(n.engine) as committed:
        assert await n.service.dispatcher.send_due_sms() == 6
    assert len(committed) == 2  # the claim, then every outcome

    assert await sms_statuses(n) == ["accepted"] * 4 + ["failed", "pending"]
    by_status = {x["status"]: x for x in await n.notices()}
    retry, failed = by_status["pending"], by_status["failed"]
    assert retry["attempts"] == 1 and retry["lease_until"] is None
    assert retry["next_attempt_at"] - n.intake.clock() == timedelta(seconds=30)
    assert await n.history(retry["id"]) == ["pending", "retry"]
    assert failed["error"] == "HTTP 400 invalid_number"
    assert await n.history(failed["id"]) == ["pending", "failed"]
    for notice in await n.notices(status="accepted"):
        assert await n.history(notice["id"]) == ["pending", "accepted"]
        assert n.sms.messages[notice["id"]]["message_id"] == notice["message_id"]

    n.intake.clock.advance(seconds=30)
    assert await n.dispatch() == 1
    assert await sms_statuses(n) == ["accepted"] * 5 + ["failed"]


async def test_outcomes_not_committed_are_sent_again_with_the_same_request_ids(
    n: NotifierHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies (here: the database goes) between the gateway's answers and their
    commit: the batch stays leased, then goes again, and the gateway recognises each SMS."""
    await n.intake.procedure()
    for k in range(3):
        await n.intake.dossier(applicant=person(f"09123456{k:02d}"))
    await n.feed()

    async def lost(*args: Any) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(repo, "record_attempts", lost)
    with pytest.raises(ConnectionError):
        await n.service.dispatcher.send_due_sms()
    monkeypatch.undo()
    assert await sms_statuses(n) == ["sending"] * 3 and n.sms.accepted_count() == 3

    n.intake.clock.advance(seconds=59)
    assert await n.dispatch() == 0  # leased
    n.intake.clock.advance(seconds=1)
    assert await n.dispatch() == 3

    ids = [r["request_id"] for r in n.sms.requests]
    assert len(ids) == 6 and len(set(ids)) == 3 and n.sms.accepted_count() == 3
    assert await sms_statuses(n) == ["accepted"] * 3
    for notice in await n.notices():
        assert await n.history(notice["id"]) == ["pending", "accepted"]
        assert n.sms.messages[notice["id"]]["message_id"] == notice["message_id"]
