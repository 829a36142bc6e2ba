"""The tracker on a real database (SQLite and PostgreSQL), fed with the intake's own events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from schemas.events import DEADLINE_EVENTS, Envelope
from services.core.domain.calendar import VN_TZ
from services.core.runtime.consumer import PoisonEvent
from services.tracker import handlers
from tests.fixtures.tracker import TrackerHarness


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=VN_TZ)


def types(flags: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in flags]


async def act(tracker: TrackerHarness, code: str, action: str, **body: Any) -> dict[str, Any]:
    h = tracker.intake
    r = await h.client.post(f"/dossiers/{code}/{action}", json=body, headers=h.clerk)
    assert r.status_code == 200, r.text
    return r.json()


async def test_receipt_is_tracked_once_with_the_receipts_due_at(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure()
    d = await tracker.intake.dossier()  # Mon 16 Nov 09:00, 5 working days
    [decision] = await tracker.feed()
    assert decision is not None and decision.applied
    tracked = await tracker.tracked(d["id"])
    assert tracked.due_at == datetime.fromisoformat(d["due_at"]) == at(23, 9)
    [(_, row)] = await tracker.intake_envelopes_all()
    again = await tracker.deliver(Envelope.model_validate_json(row["value"]))
    assert again is None  # the same event_id: applied once
    flags = await tracker.flags(d["id"])
    assert types(flags) == ["deadline.changed"]
    assert flags[0]["payload"] == {
        "due_at": "2026-11-23T09:00:00+07:00",
        "version": 1,
        "reason": "received",
    }
    for flag in flags:
        DEADLINE_EVENTS[flag["type"]].model_validate(flag["payload"])


async def test_due_soon_then_overdue_each_once_even_across_a_restart(
    tracker: TrackerHarness, database_url: str
) -> None:
    await tracker.intake.procedure()
    d = await tracker.intake.dossier()
    await tracker.feed()
    clock = tracker.clock
    clock.now = at(19, 16)  # 9 working hours left
    assert (await tracker.scan()).flags == 0
    clock.now = at(20, 9)  # 8 working hours left: due soon
    assert (await tracker.scan()).flags == 1
    assert (await tracker.scan()).flags == 0
    clock.now = at(23, 9, 1)  # past Mon 09:00
    assert (await tracker.scan()).flags == 1
    assert (await tracker.scan()).flags == 0

    # A new engine is a restarted tracker: what it raised is in its tables, not its memory.
    from services.core.runtime.database import create_engine

    restarted = TrackerHarness(
        tracker.intake, create_engine(database_url.format(service="tracker")), clock
    )
    try:
        clock.advance(days=3)
        assert (await restarted.scan()).flags == 0
    finally:
        await restarted.engine.dispose()
    flags = await tracker.flags(d["id"])
    assert types(flags) == ["deadline.changed", "deadline.due_soon", "deadline.overdue"]
    assert flags[1]["payload"]["remaining_working_minutes"] == 480
    assert flags[1]["occurred_at"] == "2026-11-20T09:00:00+07:00"
    assert flags[2]["payload"]["handling_agency"] == "UBND-Q1"
    assert (await tracker.tracked(d["id"])).next_check_at is None


async def test_scan_takes_only_the_dossiers_due_and_all_of_them(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    due = [await tracker.intake.dossier() for _ in range(7)]  # Tue 17 Nov 09:00
    await tracker.intake.procedure(code="P2", time_limit={"value": 10, "unit": "working_days"})
    later = [await tracker.intake.dossier(procedure_code="P2") for _ in range(2)]
    await tracker.feed()
    tracker.clock.now = at(17, 9, 1)
    report = await tracker.scan()  # batches of 3: 7 dossiers in three transactions
    assert report.flags == 7
    assert report.examined == 7
    for d in due:
        assert types(await tracker.flags(d["id"])) == ["deadline.changed", "deadline.overdue"]
    for d in later:
        assert types(await tracker.flags(d["id"])) == ["deadline.changed"]


async def test_stops_and_restarts_agree_with_the_intake(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(time_limit={"value": 16, "unit": "working_hours"})
    d = await tracker.intake.dossier()
    code, clock = d["code"], tracker.clock
    clock.advance(hours=4)
    await act(tracker, code, "pause", reason="Chờ nộp lệ phí")
    clock.advance(days=1)
    resumed = await act(tracker, code, "resume")
    clock.advance(hours=1)
    await act(tracker, code, "request-supplement", items=["Bản sao CCCD"], reason="Thiếu")
    clock.advance(days=1)
    restarted = await act(tracker, code, "receive-supplement")
    decisions = await tracker.feed()
    assert all(x is not None and x.applied for x in decisions)
    tracked = await tracker.tracked(d["id"])
    assert tracked.due_at == datetime.fromisoformat(restarted["due_at"])
    changes = [f for f in await tracker.flags(d["id"]) if f["type"] == "deadline.changed"]
    assert [c["payload"]["reason"] for c in changes] == [
        "received",
        "paused",
        "resumed",
        "supplement_requested",
        "supplement_received",
    ]
    assert changes[2]["payload"]["due_at"] == resumed["due_at"]
    assert changes[1]["payload"]["due_at"] is None  # the clock stopped
    # A stop keeps the version (no deadline to flag meanwhile); each new deadline is a new one.
    assert [c["payload"]["version"] for c in changes] == [1, 1, 2, 2, 3]


async def test_extension_is_late_against_the_original_deadline(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    d = await tracker.intake.dossier()  # due Tue 17 Nov 09:00
    await act(
        tracker, d["code"], "extend", new_due_at="2026-11-20T17:00:00+07:00", reason="Xác minh"
    )
    tracker.clock.now = at(18, 10)
    await act(tracker, d["code"], "complete")
    await tracker.feed()
    closed = (await tracker.flags(d["id"]))[-1]
    assert closed["type"] == "deadline.closed"
    assert closed["payload"]["outcome"] == "late"
    assert closed["payload"]["original_due_at"] == "2026-11-17T09:00:00+07:00"
    assert closed["payload"]["due_at"] == "2026-11-20T17:00:00+07:00"
    assert (await tracker.scan()).flags == 0  # nothing owed: no overdue after the result


async def test_a_late_transfer_step_flags_the_agency_that_held_it(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure()
    await tracker.intake.agency("STNMT")
    d = await tracker.intake.dossier()
    await act(tracker, d["code"], "transfer", to_agency="STNMT", allotted_hours=8)
    await tracker.feed()
    tracker.clock.now = at(17, 9, 1)  # 8 working hours after Mon 09:00
    assert (await tracker.scan()).flags == 1
    tracker.clock.advance(hours=2)
    assert (await tracker.scan()).flags == 0
    step = (await tracker.flags(d["id"]))[-1]
    assert step["type"] == "deadline.step_overdue"
    assert step["payload"]["agency_code"] == "STNMT"
    assert step["payload"]["step_number"] == 1


async def test_a_day_off_moves_open_deadlines_once(tracker: TrackerHarness) -> None:
    h = tracker.intake
    await h.procedure()
    d = await h.dossier()  # due Mon 23 Nov 09:00
    await tracker.feed()
    tracker.clock.now = at(20, 9)
    assert (await tracker.scan()).flags == 1  # due soon, version 1
    r = await h.client.put(
        "/calendar/overrides/2026-11-20", json={"kind": "day_off"}, headers=h.admin
    )
    assert r.status_code == 200, r.text
    await tracker.feed()
    tracked = await tracker.tracked(d["id"])
    assert tracked.version == 2
    # Fri 20 is off and Tue 24 a holiday: the 8 hours left of Friday go to Wed 25 09:00.
    assert tracked.due_at == at(25, 9)
    changed = (await tracker.flags(d["id"]))[-1]
    assert changed["type"] == "deadline.changed"
    assert changed["payload"]["reason"] == "calendar_changed"
    assert changed["payload"]["version"] == 2
    [(_, row)] = await tracker.intake_envelopes_all("motcua.calendar.v1")
    from schemas.events import CalendarEnvelope

    assert await tracker.calendar(CalendarEnvelope.model_validate_json(row["value"])) == 0
    assert (await tracker.scan()).flags == 0  # 8 working hours are still a day away
    tracker.clock.now = at(23, 9)
    assert (await tracker.scan()).flags == 1
    flags = await tracker.flags(d["id"])
    assert [(f["type"], f["payload"]["version"]) for f in flags[-1:]] == [("deadline.due_soon", 2)]
    # Removing the day off moves it back: a third version, and nothing raised twice.
    assert (await h.client.delete("/calendar/overrides/2026-11-20", headers=h.admin)).status_code
    await tracker.feed()
    assert (await tracker.tracked(d["id"])).due_at == at(23, 9)
    assert (await tracker.tracked(d["id"])).version == 3
    ids = [f["event_id"] for f in await tracker.flags()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"event_id": "x"}', b'{"event_id":"x","type":"nope"}'],
)
def test_undecodable_events_are_poison(body: bytes) -> None:
    with pytest.raises(PoisonEvent):
        handlers.decode_dossier_event(body)
