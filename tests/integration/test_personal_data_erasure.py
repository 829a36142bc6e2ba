"""Personal data kept no longer than needed (Decree 13/2023/NĐ-CP; docs/privacy.md), on SQLite
and PostgreSQL, with the three services' real code and a moved clock: a retention after a
dossier closed, its applicant's data is gone from every table of every service, the reports
read the same, an open dossier keeps its data, and nothing is erased twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import Envelope, PersonalDataErased, parse_payload
from services.core.runtime.database import UtcDateTime, create_engine
from services.core.runtime.migrations import upgrade_async
from services.core.runtime.outbox import purge_published
from services.intake.adapters import tables as it
from services.tracker import handlers as tracker_handlers
from tests.fixtures.db import fresh_postgres, run_aside
from tests.fixtures.notifier import NotifierHarness
from tests.fixtures.tracker import THRESHOLD_MINUTES, TrackerHarness

RETENTION = timedelta(days=365)


def person(n: int) -> dict[str, Any]:
    """An applicant whose every field is unique, so a copy of it anywhere can be found."""
    return {
        "applicant": {
            "full_name": f"Phạm Thị Hoa {n}",
            "phone": f"09{n}1234567"[:10],
            "id_number": f"0792030{n}4567"[:12],
            "email": f"hoa{n}@example.vn",
        },
        "return_method": "postal",
        "return_address": {
            "street": f"{n}7 Đường Lê Lợi",
            "ward": "Phường Bến Nghé",
            "district": "Quận 1",
            "province": "TP Hồ Chí Minh",
        },
        # A paper's name may name a person: it goes with the rest.
        "documents": [{"name": f"Giấy khai sinh của cháu Phạm Minh Khôi {n}", "copies": 1}],
    }


def needles(p: dict[str, Any]) -> list[str]:
    """What must not survive of an applicant: the phone in any form (its last nine digits
    are in every one), the ID number, the e-mail, the street, the name, the papers' names."""
    a = p["applicant"]
    return [
        a["phone"][1:],
        a["id_number"],
        a["email"],
        p["return_address"]["street"],
        a["full_name"],
        p["documents"][0]["name"],
    ]


async def every_row(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every row of every table the database holds (not only those the code declares: a copy
    nobody thought of is found too), each column as text."""
    dump: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in sorted(names):
            table = sa.Table(name, sa.MetaData())
            await conn.run_sync(lambda c, tb=table: sa.inspect(c).reflect_table(tb, None))
            rows = await conn.execute(sa.select(table))
            dump[name] = sorted(
                "|".join(
                    json.dumps(v, ensure_ascii=False, sort_keys=True)
                    if isinstance(v, dict | list)
                    else str(v)
                    for v in row
                )
                for row in rows
            )
    return dump


async def databases(n: NotifierHarness) -> dict[str, dict[str, list[str]]]:
    return {
        "intake": await every_row(n.intake.service.engine),
        "tracker": await every_row(n.tracker.engine),
        "notifier": await every_row(n.engine),
    }


def found(dump: dict[str, dict[str, list[str]]], needle: str) -> list[str]:
    return [
        f"{service}.{table}"
        for service, tables in dump.items()
        for table, rows in tables.items()
        if any(needle in row for row in rows)
    ]


async def reports(n: NotifierHarness) -> list[str]:
    out = []
    for fmt in ("json", "csv"):
        r = await n.intake.client.get(
            "/reports/on-time",
            params={"from": "2026-11-01", "to": "2026-11-30", "format": fmt},
            headers=n.intake.admin,
        )
        assert r.status_code == 200, r.text
        out.append(r.text)
    return out


async def relayed(n: NotifierHarness) -> None:
    """What the outbox relay does when a broker is there (the harness has none): the rows fed
    are marked published now."""
    outbox = it.outbox
    async with n.intake.service.engine.begin() as conn:
        await conn.execute(
            outbox.update()
            .where(outbox.c.published_at.is_(None))
            .values(published_at=n.intake.clock())
        )


# SQLite cannot reflect an index on an expression (the intake's lower(code) indexes): the
# scan reads rows, not indexes.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
async def test_a_retention_after_closing_no_copy_remains_and_reports_do_not_change(
    notifier: NotifierHarness,
) -> None:
    n = notifier
    intake = n.intake
    await intake.procedure()
    people = [person(i) for i in range(1, 6)]
    returned_by_post, returned, rejected, withdrawn, still_open = people
    codes = {}
    for name, p in zip(("post", "returned", "rejected", "withdrawn", "open"), people, strict=True):
        r = await intake.client.post(
            "/dossiers",
            json={"procedure_code": "P1", "channel": "counter", **p},
            headers={**intake.clerk, "Idempotency-Key": f"receipt-{name}"},
        )
        assert r.status_code == 201, r.text
        codes[name] = r.json()["code"]
    for name in ("post", "returned"):
        await n.act(codes[name], "start")
        await n.act(codes[name], "complete")
    await n.act(codes["rejected"], "reject", {"reason": "Hồ sơ không đủ điều kiện"})
    await n.act(codes["withdrawn"], "withdraw", {"reason": "Người nộp xin rút"})
    await n.feed()
    await n.dispatch()  # the SMS go out, the postal order is placed
    assert len(n.postal.orders) == 2
    for name in ("post", "returned"):
        await n.act(codes[name], "return")
    await n.feed()
    await n.dispatch()
    await relayed(n)

    dump = await databases(n)
    for p in people:  # the scan finds what is there
        for needle in needles(p):
            assert found(dump, needle), needle
    intake.clock.advance(days=RETENTION.days + 1)
    public = await intake.client.get(
        f"/public/dossiers/{codes['returned']}", params={"phone": returned["applicant"]["phone"]}
    )
    assert public.status_code == 200
    wrong_phone = await intake.client.get(
        f"/public/dossiers/{codes['returned']}", params={"phone": "0987000111"}
    )
    assert wrong_phone.status_code == 404
    before = await reports(n)
    shown_before = (
        await intake.client.get(f"/dossiers/{codes['returned']}", headers=intake.admin)
    ).json()

    done = await intake.service.housekeeping.run_once()
    assert done["personal_data_erased"] == 4
    await n.feed()  # the tracker and the notifier hear of it
    await relayed(n)
    # The relay's housekeeping, which the harness (no broker) does not register.
    await purge_published(
        intake.service.engine,
        it.outbox,
        timedelta(days=intake.service.settings.outbox_keep_days),
        now=intake.clock(),
    )

    assert await reports(n) == before
    dump = await databases(n)
    for p in (returned_by_post, returned, rejected, withdrawn):
        for needle in needles(p):
            assert found(dump, needle) == [], needle
    for needle in needles(still_open):
        assert found(dump, needle), needle
    shown = await intake.client.get(f"/dossiers/{codes['returned']}", headers=intake.admin)
    assert shown.status_code == 200
    after = shown.json()
    assert after["applicant"] is None and after["return_address"] is None
    assert after["documents"] == []
    assert after["personal_data_erased_at"] is not None
    kept = ("code", "status", "procedure_code", "received_at", "due_at", "outcome", "history")
    assert {k: after[k] for k in kept} == {k: shown_before[k] for k in kept}
    still = (await intake.client.get(f"/dossiers/{codes['open']}", headers=intake.admin)).json()
    assert still["applicant"]["phone"] == "+84" + still_open["applicant"]["phone"][1:]
    public = await intake.client.get(
        f"/public/dossiers/{codes['returned']}", params={"phone": returned["applicant"]["phone"]}
    )
    assert (public.status_code, public.json()) == (404, wrong_phone.json())

    # Run again, and the erasure events told twice: nothing changes anywhere.
    erased_events = [
        (topic, value)
        for topic, value in await n.intake_rows()
        if json.loads(value)["type"] == "dossier.personal_data_erased"
    ]
    assert len(erased_events) == 4
    assert (await intake.service.housekeeping.run_once())["personal_data_erased"] == 0
    for topic, value in erased_events:
        await n.deliver(topic, value.encode())
        await n.tracker.deliver(Envelope.model_validate_json(value))
    assert await databases(n) == dump
    assert await reports(n) == before


async def test_the_tracker_applies_the_erasure_and_keeps_its_clock(tracker: TrackerHarness) -> None:
    """Not dead-lettered nor taken for a replay: applied, and nothing of the clock moves (the
    tracker holds no personal data)."""
    intake = tracker.intake
    await intake.procedure()
    dossier = await intake.dossier()
    await tracker.feed()
    await intake.client.post(
        f"/dossiers/{dossier['code']}/withdraw", json={"reason": "rút"}, headers=intake.clerk
    )
    await tracker.feed()
    held = await tracker.tracked(dossier["id"])
    intake.clock.advance(days=400)
    assert (await intake.service.housekeeping.run_once())["personal_data_erased"] == 1
    [row] = [v for _, v in await tracker.intake_envelopes()]
    body = row["value"].encode()
    envelope = tracker_handlers.decode_dossier_event(body)  # a poison event would raise here
    assert isinstance(parse_payload(envelope), PersonalDataErased)
    [decision] = await tracker.feed()
    assert decision is not None and decision.applied and not decision.changed
    assert await tracker.tracked(dossier["id"]) == held
    unknown = envelope.model_copy(update={"event_id": "other", "dossier_id": "never-seen"})
    decision = await tracker_handlers.handle_dossier_event(
        tracker.engine, unknown, tracker.calendars, THRESHOLD_MINUTES, tracker.clock()
    )
    assert decision is not None and decision.applied


async def test_an_open_or_recent_dossier_is_not_erased(tracker: TrackerHarness) -> None:
    intake = tracker.intake
    await intake.procedure()
    recent = await intake.dossier()
    await intake.dossier(applicant={"full_name": "Trần B", "phone": "0987654321"})
    await intake.client.post(
        f"/dossiers/{recent['code']}/reject", json={"reason": "thiếu giấy tờ"}, headers=intake.clerk
    )
    intake.clock.advance(days=RETENTION.days - 1)
    assert (await intake.service.housekeeping.run_once())["personal_data_erased"] == 0
    shown = (await intake.client.get(f"/dossiers/{recent['code']}", headers=intake.admin)).json()
    assert shown["applicant"]["phone"] == "+84912345678"
    assert shown["personal_data_erased_at"] is None


# -- the backfill of closed_at (intake migration 0007) ---------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def intake_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An intake database at the migration before closed_at, as a deployment has it."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/intake.db"
    else:
        url = fresh_postgres("backfill")
    run_aside(upgrade_async("intake", url, "0006"))
    return url


async def test_dossiers_closed_before_the_upgrade_count_from_their_last_action(
    intake_at_0006: str,
) -> None:
    now = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
    closed = "2026-03-18T09:30:00+07:00"
    rows = [
        ("a", "returned", [{"at": "2026-03-10T08:00:00+07:00"}, {"at": closed}]),
        ("b", "in_progress", [{"at": "2026-03-10T08:00:00+07:00"}]),
    ]
    d = sa.table(
        "intake_dossiers",
        *(sa.column(c) for c in ("id", "code", "agency_code", "procedure_code", "status")),
        sa.column("applicant_phone"),
        sa.column("received_at", UtcDateTime()),
        sa.column("version"),
        sa.column("state", sa.JSON),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    engine = create_engine(intake_at_0006)
    try:
        async with engine.begin() as conn:
            for id_, status, history in rows:
                await conn.execute(
                    d.insert().values(
                        id=id_, code=f"C-{id_}", agency_code="A", procedure_code="P",
                        status=status, applicant_phone="+84912345678", received_at=now,
                        version=1, updated_at=now,
                        state={"received_at": "2026-03-10T08:00:00+07:00", "history": history},
                    )
                )  # fmt: skip
        await upgrade_async("intake", intake_at_0006)
        async with engine.connect() as conn:
            c = it.dossiers.c
            got = dict((await conn.execute(sa.select(c.id, c.closed_at).order_by(c.id))).all())
        assert got == {"a": datetime.fromisoformat(closed), "b": None}
    finally:
        await engine.dispose()
