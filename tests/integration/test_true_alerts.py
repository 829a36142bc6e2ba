"""Every alert true (issue 13 items 1-3): an overdue alert is told only when it is true of the
dossier as known, whatever the order the topics are read in, and one dossier's notices reach
a citizen in the order of the facts.

A history imported through the API (actions with a past `at`) is the case that showed it: the
tracker's scan, running between two imported events, sees a deadline long past; the events
after it (finished early, rejected, paused) answer it. The notifier is fed as its consumers
would be, at the moments chosen here, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.domain.calendar import VN_TZ
from services.core.runtime.kafka import DEADLINE_TOPIC, DOSSIER_TOPIC
from services.notifier.adapters import tables as t
from services.tracker.adapters import tables as tracker_tables
from tests.fixtures.notifier import NotifierHarness

SETTLE = timedelta(minutes=5)  # Settings.alert_settle_seconds's default


@pytest.fixture
def n(notifier: NotifierHarness) -> NotifierHarness:
    return notifier


def october(day: int, hour: int = 9) -> str:
    return datetime(2026, 10, day, hour, tzinfo=VN_TZ).isoformat()


async def imported(n: NotifierHarness) -> dict[str, Any]:
    """A dossier received on 1 October (5 working days: due 8 October), imported today; the
    tracker's scan runs before any later event of its history is recorded."""
    await n.supervisors()
    await n.intake.procedure()
    dossier = await n.intake.dossier(received_at=october(1))
    await n.tracker.feed()
    assert (await n.tracker.scan()).raised == {"deadline.overdue": 1}
    await n.feed()  # the notifier hears of the dossier and of the flag
    return dossier


async def settle_and_dispatch(n: NotifierHarness) -> None:
    n.intake.clock.advance(seconds=SETTLE.total_seconds())
    await n.dispatch()


async def alerts(n: NotifierHarness) -> list[dict[str, Any]]:
    return await n.notices(template="overdue_alert")


async def pending_alerts(n: NotifierHarness) -> int:
    async with n.engine.connect() as conn:
        return int((await conn.scalar(sa.select(sa.func.count()).select_from(t.alerts))) or 0)


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(
            [("complete", {"at": october(6)}), ("return", {"at": october(7)})], id="early"
        ),
        pytest.param([("reject", {"at": october(5), "reason": "thiếu hồ sơ"})], id="rejected"),
        pytest.param([("pause", {"at": october(5), "reason": "chờ thẩm định"})], id="paused"),
        pytest.param(
            [
                ("request-supplement", {"at": october(2), "items": ["Sổ hộ khẩu"], "reason": "x"}),
                ("withdraw", {"at": october(9), "reason": "công dân rút"}),
            ],
            id="withdrawn-awaiting-supplement",
        ),
    ],
)
async def test_importing_a_history_that_was_never_overdue_texts_no_supervisor(
    n: NotifierHarness, history: list[tuple[str, dict[str, Any]]]
) -> None:
    dossier = await imported(n)
    await n.dispatch()  # before the rest of the history: nothing told yet, the flag waits
    assert await alerts(n) == []
    for action, body in history:
        await n.act(dossier["code"], action, body)
    await n.feed()
    await settle_and_dispatch(n)
    assert await alerts(n) == []
    assert await pending_alerts(n) == 0  # dropped, not kept for later
    assert not [m for m in n.sms.messages.values() if "qua han" in m["text"]]


async def test_a_flag_told_after_the_history_is_decided_on_the_state_known_then(
    n: NotifierHarness,
) -> None:
    """The notifier read the flag and the dossier's later events, but not yet the tracker's
    answer to them (deadline.closed): the card's status is enough to drop the alert."""
    dossier = await imported(n)
    await n.act(dossier["code"], "complete", {"at": october(6)})
    for topic, value in await n.intake_rows():  # the dossier topic only
        if topic == DOSSIER_TOPIC:
            await n.deliver(topic, value.encode())
    await settle_and_dispatch(n)
    assert await alerts(n) == []


async def test_an_open_dossier_truly_overdue_after_its_import_gets_one_alert(
    n: NotifierHarness,
) -> None:
    dossier = await imported(n)
    await n.intake.agency("UBND-Q3")
    await n.act(dossier["code"], "start", {"at": october(1, 10)})
    await n.act(dossier["code"], "transfer", {"at": october(2), "to_agency": "UBND-Q3"})
    await n.feed()
    n.intake.clock.advance(seconds=60)
    await n.dispatch()
    assert await alerts(n) == []  # news of the dossier a minute ago: the flag still waits
    await settle_and_dispatch(n)
    told = await alerts(n)
    assert sorted(a["recipient"] for a in told) == ["+84901000001", "+84901000002"]
    assert all(dossier["code"] in a["text"] for a in told)
    # Later scans and redeliveries tell no one again.
    await n.tracker.scan()
    for topic, value in await n.intake_rows():
        await n.deliver(topic, value.encode())
    await n.feed()
    await settle_and_dispatch(n)
    assert len(await alerts(n)) == 2


async def test_a_flag_that_arrives_before_its_dossier_waits_for_it(n: NotifierHarness) -> None:
    """The deadline topic read before the dossier topic: the alert waits until the dossier
    is known, and then names its procedure."""
    await n.supervisors()
    await n.intake.procedure(name="Cấp giấy phép xây dựng")
    await n.intake.dossier(received_at=october(1))
    await n.tracker.feed()
    await n.tracker.scan()
    for topic, value in await n.intake_rows():  # the supervisors, not the dossier
        if topic not in (DOSSIER_TOPIC, DEADLINE_TOPIC):
            await n.deliver(topic, value.encode())
    async with n.tracker.engine.connect() as conn:
        flags = (await conn.execute(sa.select(tracker_tables.outbox.c.value))).scalars().all()
    for value in flags:
        await n.deliver(DEADLINE_TOPIC, value.encode())
    await settle_and_dispatch(n)
    assert await alerts(n) == []
    assert await pending_alerts(n) == 1  # held, not dropped

    for topic, value in await n.intake_rows():
        if topic == DOSSIER_TOPIC:
            await n.deliver(topic, value.encode())
    await settle_and_dispatch(n)
    told = await alerts(n)
    assert len(told) == 2
    assert all("Cap giay phep xay dung" in a["text"] for a in told)
    assert all("()" not in a["text"] for a in told)


async def test_a_dossier_rejected_while_its_clock_is_stopped_closes_without_a_due_date(
    n: NotifierHarness,
) -> None:
    await n.intake.procedure()
    dossier = await n.intake.dossier()
    items = {"items": ["Bản sao sổ đỏ"], "reason": "thiếu"}
    await n.act(dossier["code"], "request-supplement", items)
    answer = await n.act(dossier["code"], "reject", {"reason": "không bổ sung"})
    assert answer["due_at"] is None
    await n.tracker.feed()
    (closed,) = [f for f in await n.tracker.flags(dossier["id"]) if f["type"] == "deadline.closed"]
    assert closed["payload"]["due_at"] is None
    assert closed["payload"]["reason"] == "rejected"


async def test_a_citizens_notices_go_out_in_the_order_of_the_facts(n: NotifierHarness) -> None:
    """Received, then a supplement requested seconds later, decided in one run at the same
    instant; the first SMS is refused once by the gateway and retried later: the second
    waits for it."""
    await n.intake.procedure()
    dossier = await n.intake.dossier()
    n.intake.clock.advance(seconds=20)
    items = {"items": ["Bản sao sổ đỏ"], "reason": "thiếu"}
    await n.act(dossier["code"], "request-supplement", items)
    told = [v.encode() for topic, v in await n.intake_rows() if topic == DOSSIER_TOPIC]
    await n.service.on_dossier_events(told)  # one run: both notices decided at one instant
    n.sms.fail_next(503)
    await n.dispatch()
    (first,) = n.sms.requests
    notices = {x["template"]: x for x in await n.notices()}
    assert first["request_id"] == notices["received"]["id"]
    assert notices["received"]["status"] == "pending"  # to be tried again later
    assert notices["supplement_requested"]["status"] == "pending"  # waiting its turn
    assert notices["supplement_requested"]["attempts"] == 0

    n.intake.clock.advance(minutes=10)
    await n.dispatch()
    order = [r["request_id"] for r in n.sms.requests]
    assert order == [
        notices["received"]["id"],
        notices["received"]["id"],
        notices["supplement_requested"]["id"],
    ]
    assert {x["status"] for x in await n.notices()} == {"accepted"}


async def test_a_late_inter_agency_step_reaches_the_supervisors_of_the_agency_holding_it(
    n: NotifierHarness,
) -> None:
    await n.supervisors()  # the receiving agency's: not told of another agency's step
    await n.intake.agency("STNMT", "Sở Tài nguyên và Môi trường")
    await n.supervisors("STNMT", ("0901000009",))
    await n.intake.procedure()
    late = await n.intake.dossier()
    back = await n.intake.dossier()
    for dossier in (late, back):
        await n.act(dossier["code"], "transfer", {"to_agency": "STNMT", "allotted_hours": 8})
    await n.feed()
    n.intake.clock.advance(days=1, hours=2)
    report = await n.tracker.scan()
    assert report.raised.get("deadline.step_overdue") == 2
    await n.feed()
    # One step ends before its alert is told: handed back to the receiving agency.
    await n.act(back["code"], "transfer", {"to_agency": "UBND-Q1"})
    await n.feed()
    await settle_and_dispatch(n)
    (told,) = await n.notices(template="step_overdue")
    assert told["recipient"] == "+84901000009" and told["dossier_id"] == late["id"]
    (text,) = await n.texts(template="step_overdue")
    assert late["code"] in text and "qua han xu ly" in text
    assert "So Tai nguyen va Moi truong" in text and "STNMT" not in text  # named, not coded
    assert await pending_alerts(n) == 0
