"""The deadline clock's rules through the intake's HTTP API, with the tracker fed the same events:
the appointment a clerk is answered and the deadline the tracker holds are the same
(docs/domain.md, "Working time"). November 2026: Tue 24 Nov is a day off (Vietnam Culture
Day); office hours 08–12, 13–17 unless an agency has its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.core.domain.calendar import VN_TZ
from tests.fixtures.tracker import TrackerHarness


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=VN_TZ)


async def act(
    tracker: TrackerHarness, code: str, action: str, when: datetime, **body: Any
) -> dict[str, Any]:
    h = tracker.intake
    h.clock.now = when
    r = await h.client.post(f"/dossiers/{code}/{action}", json=body, headers=h.clerk)
    assert r.status_code == 200, r.text
    return r.json()


async def receive(tracker: TrackerHarness, when: datetime, **kw: Any) -> dict[str, Any]:
    tracker.intake.clock.now = when
    return await tracker.intake.dossier(**kw)


async def tracker_due(tracker: TrackerHarness, dossier: dict[str, Any]) -> datetime | None:
    decisions = await tracker.feed()
    assert all(d is None or d.applied for d in decisions), [d.ignored for d in decisions if d]
    return (await tracker.tracked(dossier["id"])).due_at


def due(answer: dict[str, Any], key: str = "due_at") -> datetime | None:
    value = answer[key]
    return datetime.fromisoformat(value) if value is not None else None


async def saturday_desk(tracker: TrackerHarness) -> None:
    weekday = [["08:00", "12:00"], ["13:00", "17:00"]]
    schedule = {"week": {**{str(d): weekday for d in range(5)}, "5": [["08:00", "11:30"]]}}
    h = tracker.intake
    body = {"name": "UBND Quận 1", "office_schedule": schedule}
    r = await h.client.put("/agencies/UBND-Q1", json=body, headers=h.admin)
    assert r.status_code == 200, r.text


# -- the 15:00 cut-off: received *after* 15:00 -------------------------------------------------


async def test_a_dossier_received_at_the_cut_off_counts_that_day(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(
        time_limit={"value": 1, "unit": "working_days"}, cutoff_time="15:00"
    )
    # Mon 16 Nov 15:00 + 8 working hours: 2 h Monday, 6 h Tuesday.
    d = await receive(tracker, at(11, 16, 15))
    assert due(d) == at(11, 17, 15) == await tracker_due(tracker, d)
    late = await receive(tracker, at(11, 16, 15, 1))
    assert due(late) == at(11, 17, 17) == await tracker_due(tracker, late)


# -- online dossiers in the last hour before closing -------------------------------------------


async def test_an_online_dossier_in_the_last_hour_counts_from_the_next_working_day(
    tracker: TrackerHarness,
) -> None:
    await tracker.intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    online = await receive(tracker, at(11, 16, 16, 30), channel="online")
    assert due(online) == at(11, 17, 17) == await tracker_due(tracker, online)
    counter = await receive(tracker, at(11, 16, 16, 30), channel="counter")
    assert due(counter) == at(11, 17, 16, 30) == await tracker_due(tracker, counter)
    # The supplement of an online dossier, in the last hour too: the full day from Wednesday.
    code = online["code"]
    await act(tracker, code, "request-supplement", at(11, 17, 9), items=["CCCD"], reason="Thiếu")
    restarted = await act(tracker, code, "receive-supplement", at(11, 18, 16, 5))
    assert due(restarted) == at(11, 19, 17) == await tracker_due(tracker, online)


async def test_the_last_hour_is_the_agencys_own(tracker: TrackerHarness) -> None:
    await saturday_desk(tracker)  # closes at 11:30 on Saturday: the last hour from 10:30
    await tracker.intake.procedure(time_limit={"value": 1, "unit": "working_days"})
    late = await receive(tracker, at(11, 21, 10, 30), channel="online")
    assert due(late) == at(11, 23, 17) == await tracker_due(tracker, late)
    # 10:15: Saturday 10:15–11:30 (75 min), then Monday 405 min → 15:45.
    early = await receive(tracker, at(11, 21, 10, 15), channel="online")
    assert due(early) == at(11, 23, 15, 45) == await tracker_due(tracker, early)


# -- calendar days: Civil Code 2015 Art. 147–148 -------------------------------------------------


async def test_calendar_days_count_from_the_day_after_receipt(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(time_limit={"value": 10, "unit": "calendar_days"})
    # Received online on Saturday 21 Nov: Sunday is day 1, Tuesday 1 Dec day 10.
    d = await receive(tracker, at(11, 21, 10), channel="online")
    assert due(d) == at(12, 1, 17) == await tracker_due(tracker, d)


async def test_calendar_days_paused_go_on_by_the_days_not_begun(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure(time_limit={"value": 5, "unit": "calendar_days"})
    # Mon 16 Nov + 5: the last day is Sat 21, so the period ends Mon 23 Nov 17:00.
    d = await receive(tracker, at(11, 16, 9))
    assert due(d) == at(11, 23, 17)
    await act(tracker, d["code"], "pause", at(11, 18, 9), reason="Chờ nộp phí")
    # Thu 19, Fri 20, Sat 21 were left; resumed Mon 23: Tue 24, Wed 25, Thu 26.
    resumed = await act(tracker, d["code"], "resume", at(11, 23, 9))
    assert due(resumed) == at(11, 26, 17) == await tracker_due(tracker, d)


# -- extension while paused --------------------------------------------------------------------


async def test_a_paused_dossier_is_extended_and_the_date_stands(tracker: TrackerHarness) -> None:
    await tracker.intake.procedure()  # 5 working days
    d = await receive(tracker, at(11, 16, 9))  # due Mon 23 Nov 09:00
    code = d["code"]
    await act(tracker, code, "pause", at(11, 17, 9), reason="Chờ ý kiến Sở TNMT")  # 1920 left
    extended = await act(
        tracker, code, "extend", at(11, 18, 10),
        new_due_at="2026-12-04T17:00:00+07:00", reason="Chờ kết quả thẩm định",
    )  # fmt: skip
    assert extended["status"] == "paused"
    assert extended["due_at"] is None  # the clock stands still until the resume
    assert due(extended, "original_due_at") == at(11, 23, 9)
    assert await tracker_due(tracker, d) is None
    # Resumed Mon 23 Nov 08:00: 1920 minutes end Fri 27 Nov 17:00 (Tue 24 is off); the date
    # promised is later and stands; the result will be marked against the law's deadline.
    resumed = await act(tracker, code, "resume", at(11, 23, 8))
    assert due(resumed) == at(12, 4, 17) == await tracker_due(tracker, d)
    assert due(resumed, "original_due_at") == at(11, 27, 17)
    tracked = await tracker.tracked(d["id"])
    assert tracked.original_due_at == at(11, 27, 17)
    done = await act(tracker, code, "complete", at(11, 30, 10))
    assert done["outcome"] == "late"


# -- the intake's clock follows calendar changes -----------------------------------------------


async def override(tracker: TrackerHarness, day: str) -> None:
    h = tracker.intake
    r = await h.client.put(f"/calendar/overrides/{day}", json={"kind": "day_off"}, headers=h.admin)
    assert r.status_code == 200, r.text


async def test_a_resume_after_a_calendar_change_continues_the_time_left_under_it(
    tracker: TrackerHarness,
) -> None:
    await tracker.intake.procedure()  # 5 working days
    d = await receive(tracker, at(11, 16, 9))  # due Mon 23 Nov 09:00
    await act(tracker, d["code"], "pause", at(11, 18, 9), reason="Chờ nộp phí")  # 1440 left
    tracker.intake.clock.now = at(11, 19, 9)
    # Tue 17 Nov declared a day off afterwards: the clock had used 7 h, not 15 h; 1920 left.
    await override(tracker, "2026-11-17")
    await tracker_due(tracker, d)
    # Resumed Thu 26 Nov 08:00: Thu, Fri, Mon 30, Tue 1 Dec → Tue 1 Dec 17:00 (not Mon 30).
    resumed = await act(tracker, d["code"], "resume", at(11, 26, 8))
    assert due(resumed) == at(12, 1, 17) == await tracker_due(tracker, d)


async def test_an_extension_after_a_calendar_change_is_compared_with_the_new_appointment(
    tracker: TrackerHarness,
) -> None:
    await tracker.intake.procedure()  # 5 working days
    d = await receive(tracker, at(11, 16, 9))  # due Mon 23 Nov 09:00
    tracker.intake.clock.now = at(11, 17, 9)
    await override(tracker, "2026-11-20")  # Fri 20 off (Tue 24 too): due Wed 25 Nov 09:00
    assert await tracker_due(tracker, d) == at(11, 25, 9)
    h = tracker.intake
    url = f"/dossiers/{d['code']}/extend"
    body = {"new_due_at": "2026-11-24T17:00:00+07:00", "reason": "Xác minh"}
    r = await h.client.post(url, json=body, headers=h.clerk)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "new_due_at"
    body = {"new_due_at": "2026-11-27T17:00:00+07:00", "reason": "Xác minh"}
    r = await h.client.post(url, json=body, headers=h.clerk)
    assert r.status_code == 200, r.text
    assert due(r.json(), "original_due_at") == at(11, 25, 9)
    assert await tracker_due(tracker, d) == at(11, 27, 17)
    assert (await tracker.tracked(d["id"])).original_due_at == at(11, 25, 9)
