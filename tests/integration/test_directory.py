"""The agencies' directory on SQLite and PostgreSQL: agencies read back, supervisors listed,
changed and removed over HTTP, the directory event after each write, the notifier's copy of
it, and the backfill of agencies whose entry was never published (intake migration 0006)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import DirectoryEnvelope
from services.core.domain.calendar import VN_TZ
from services.core.runtime.database import create_engine
from services.core.runtime.migrations import upgrade_async
from services.intake.adapters import tables as t
from services.notifier.adapters import repository as notifier_repo
from services.notifier.adapters import tables as nt
from tests.fixtures.db import fresh_postgres, run_aside
from tests.fixtures.intake import IntakeHarness
from tests.fixtures.notifier import NotifierHarness

SATURDAY_MORNINGS = {
    "week": {
        **{str(d): [["07:30", "11:30"], ["13:00", "17:00"]] for d in range(5)},
        "5": [["07:30", "11:30"]],
    }
}
MINH = {"name": "Ông Minh", "phone": "0903123456"}
THU = {"name": "Bà Thu", "phone": "0987000111", "email": "thu@example.vn"}


async def directory_payloads(engine: AsyncEngine, after: int = 0) -> list[dict[str, Any]]:
    """The payloads of the directory events in the intake's outbox, oldest first, checked
    against the contract on the way."""
    query = (
        sa.select(t.outbox)
        .where(t.outbox.c.topic == "motcua.directory.v1", t.outbox.c.id > after)
        .order_by(t.outbox.c.id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    envelopes = [DirectoryEnvelope.model_validate_json(r.value) for r in rows]
    assert [r.key for r in rows] == [e.payload.agency_code for e in envelopes]
    return [e.payload.model_dump() for e in envelopes]


async def last_outbox_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        last = await conn.scalar(sa.select(sa.func.coalesce(sa.func.max(t.outbox.c.id), 0)))
    return int(last or 0)


async def add(
    intake: IntakeHarness, body: dict[str, Any], agency: str = "UBND-Q1"
) -> dict[str, Any]:
    r = await intake.client.post(f"/agencies/{agency}/supervisors", json=body, headers=intake.admin)
    assert r.status_code == 201, r.text
    added: dict[str, Any] = r.json()
    return added


# -- agencies read back ----------------------------------------------------------------------


async def test_agencies_are_read_back_with_their_office_hours(intake: IntakeHarness) -> None:
    body = {"name": "Văn phòng đăng ký đất đai Q1", "office_schedule": SATURDAY_MORNINGS}
    r = await intake.client.put("/agencies/VPDK-Q1", json=body, headers=intake.admin)
    assert r.status_code == 200, r.text
    await intake.procedure(code="P1", agency="UBND-Q1")  # makes UBND-Q1, named by its code

    listing = await intake.client.get("/agencies", headers=intake.clerk)
    assert listing.status_code == 200, listing.text
    assert [(a["code"], a["name"]) for a in listing.json()] == [
        ("UBND-Q1", "UBND-Q1"),
        ("VPDK-Q1", "Văn phòng đăng ký đất đai Q1"),
    ]
    one = await intake.client.get("/agencies/VPDK-Q1", headers=intake.supervisor)
    assert one.status_code == 200, one.text
    assert one.json() == r.json()
    assert one.json()["office_schedule"]["week"]["5"] == [["07:30", "11:30"]]
    default = (await intake.client.get("/agencies/UBND-Q1", headers=intake.clerk)).json()
    assert default["office_schedule"]["week"]["0"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert "5" not in default["office_schedule"]["week"]


async def test_an_unknown_agency_is_a_404_naming_it(intake: IntakeHarness) -> None:
    await intake.agency("VPDK-Q1")
    r = await intake.client.get("/agencies/STNMT", headers=intake.clerk)
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "agency STNMT not found",
        "field": "agency_code",
    }
    spelled = await intake.client.get("/agencies/vpdk-q1", headers=intake.clerk)
    assert spelled.status_code == 404
    assert "did you mean VPDK-Q1?" in spelled.json()["error"]["message"]
    assert (await intake.client.get("/agencies")).status_code == 401
    assert (await intake.client.get("/agencies/VPDK-Q1")).status_code == 401


# -- supervisors: list, change, remove --------------------------------------------------------


async def test_supervisors_are_listed_changed_and_removed(intake: IntakeHarness) -> None:
    await intake.agency("UBND-Q1", "Ủy ban nhân dân Quận 1")
    minh = await add(intake, MINH)
    intake.clock.advance(minutes=1)
    thu = await add(intake, THU)
    url = "/agencies/UBND-Q1/supervisors"

    listing = await intake.client.get(url, headers=intake.admin)
    assert listing.status_code == 200, listing.text
    assert listing.json() == [minh, thu]
    assert minh["phone"] == "+84903123456"
    own = await intake.client.get(url, headers=intake.supervisor)  # a supervisor of UBND-Q1
    assert own.json() == [minh, thu]

    before = await last_outbox_id(intake.service.engine)
    change = {"name": "Ông Lê Minh", "phone": "0912000999", "email": "minh@example.vn"}
    r = await intake.client.put(f"{url}/{minh['id']}", json=change, headers=intake.admin)
    assert r.status_code == 200, r.text
    changed = {**minh, **change, "phone": "+84912000999"}
    assert r.json() == changed
    assert (await intake.client.get(url, headers=intake.admin)).json() == [changed, thu]
    (event,) = await directory_payloads(intake.service.engine, after=before)
    assert event == {
        "agency_code": "UBND-Q1",
        "agency_name": "Ủy ban nhân dân Quận 1",
        "supervisors": [
            {"id": minh["id"], "name": "Ông Lê Minh", "phone": "+84912000999",
             "email": "minh@example.vn"},
            {"id": thu["id"], "name": "Bà Thu", "phone": "+84987000111",
             "email": "thu@example.vn"},
        ],
    }  # fmt: skip

    # A change without the e-mail removes it: the body replaces the details.
    r = await intake.client.put(f"{url}/{thu['id']}", json=MINH, headers=intake.admin)
    assert r.status_code == 200, r.text
    assert r.json()["email"] is None

    before = await last_outbox_id(intake.service.engine)
    r = await intake.client.delete(f"{url}/{minh['id']}", headers=intake.admin)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert [s["id"] for s in (await intake.client.get(url, headers=intake.admin)).json()] == [
        thu["id"]
    ]
    r = await intake.client.delete(f"{url}/{thu['id']}", headers=intake.admin)
    assert r.status_code == 204, r.text
    assert (await intake.client.get(url, headers=intake.admin)).json() == []
    events = await directory_payloads(intake.service.engine, after=before)
    assert [[s["id"] for s in e["supervisors"]] for e in events] == [[thu["id"]], []]
    assert {e["agency_name"] for e in events} == {"Ủy ban nhân dân Quận 1"}


async def test_who_may_list_and_change_supervisors(intake: IntakeHarness) -> None:
    minh = await add(intake, MINH)
    url = "/agencies/UBND-Q1/supervisors"
    one = f"{url}/{minh['id']}"
    other_supervisor = await intake.token("supervisor", "UBND-Q3")
    before = await last_outbox_id(intake.service.engine)

    assert (await intake.client.get(url)).status_code == 401
    assert (await intake.client.put(one, json=MINH)).status_code == 401
    assert (await intake.client.delete(one)).status_code == 401
    for headers in (intake.clerk, other_supervisor):
        r = await intake.client.get(url, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    for headers in (intake.clerk, intake.supervisor):
        assert (await intake.client.put(one, json=THU, headers=headers)).status_code == 403
        assert (await intake.client.delete(one, headers=headers)).status_code == 403

    assert await last_outbox_id(intake.service.engine) == before
    listing = await intake.client.get(url, headers=intake.admin)
    assert listing.json() == [minh]


async def test_a_bad_change_is_a_422_naming_the_field_and_writes_nothing(
    intake: IntakeHarness,
) -> None:
    minh = await add(intake, MINH)
    one = f"/agencies/UBND-Q1/supervisors/{minh['id']}"
    before = await last_outbox_id(intake.service.engine)
    cases = [
        ({"name": "Ông Minh", "phone": "12345"}, "phone"),
        ({"phone": "0903123456"}, "name"),
        ({"name": "   ", "phone": "0903123456"}, "name"),
        ({"name": "Ông Minh", "phone": "0903123456", "email": "not-an-email"}, "email"),
        ({"name": "Ông Minh", "phone": "0903123456", "role": "boss"}, "role"),
    ]
    for body, field in cases:
        r = await intake.client.put(one, json=body, headers=intake.admin)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    assert await last_outbox_id(intake.service.engine) == before
    listing = await intake.client.get("/agencies/UBND-Q1/supervisors", headers=intake.admin)
    assert listing.json() == [minh]


async def test_an_unknown_agency_or_supervisor_is_a_404_naming_it(intake: IntakeHarness) -> None:
    minh = await add(intake, MINH)
    await intake.agency("UBND-Q3")
    before = await last_outbox_id(intake.service.engine)
    unknown = "0b5e7a44-0000-4000-8000-000000000000"
    cases = [
        ("GET", "/agencies/STNMT/supervisors", "agency_code", "agency STNMT not found"),
        ("PUT", f"/agencies/STNMT/supervisors/{minh['id']}", "agency_code", "agency STNMT"),
        ("DELETE", f"/agencies/STNMT/supervisors/{minh['id']}", "agency_code", "agency STNMT"),
        ("PUT", f"/agencies/UBND-Q1/supervisors/{unknown}", "supervisor_id", unknown),
        ("DELETE", f"/agencies/UBND-Q1/supervisors/{unknown}", "supervisor_id", unknown),
        # Minh supervises UBND-Q1, not UBND-Q3: another agency's supervisor is not found there.
        ("DELETE", f"/agencies/UBND-Q3/supervisors/{minh['id']}", "supervisor_id", minh["id"]),
        ("DELETE", "/agencies/ubnd-q1/supervisors/x", "agency_code", "did you mean UBND-Q1?"),
    ]
    for method, url, field, named in cases:
        body = MINH if method == "PUT" else None
        r = await intake.client.request(method, url, json=body, headers=intake.admin)
        assert r.status_code == 404, (method, url, r.text)
        assert r.json()["error"]["field"] == field, (method, url, r.text)
        assert named in r.json()["error"]["message"], (method, url, r.text)
    assert await last_outbox_id(intake.service.engine) == before
    listing = await intake.client.get("/agencies/UBND-Q1/supervisors", headers=intake.admin)
    assert listing.json() == [minh]


async def test_renaming_an_agency_publishes_its_entry(intake: IntakeHarness) -> None:
    minh = await add(intake, MINH)
    before = await last_outbox_id(intake.service.engine)
    await intake.agency("UBND-Q1", "UBND Quận 1")
    (event,) = await directory_payloads(intake.service.engine, after=before)
    assert event["agency_name"] == "UBND Quận 1"
    assert [s["id"] for s in event["supervisors"]] == [minh["id"]]

    # New office hours alone do not concern the notifier.
    before = await last_outbox_id(intake.service.engine)
    body = {"name": "UBND Quận 1", "office_schedule": SATURDAY_MORNINGS}
    r = await intake.client.put("/agencies/UBND-Q1", json=body, headers=intake.admin)
    assert r.status_code == 200, r.text
    assert await directory_payloads(intake.service.engine, after=before) == []

    # An agency named when it is created is announced with its (empty) list.
    await intake.agency("STNMT", "Sở Tài nguyên và Môi trường")
    (event,) = await directory_payloads(intake.service.engine, after=before)
    assert event == {
        "agency_code": "STNMT",
        "agency_name": "Sở Tài nguyên và Môi trường",
        "supervisors": [],
    }


# -- the notifier's copy ----------------------------------------------------------------------


async def notifier_supervisors(n: NotifierHarness, agency: str) -> list[tuple[str, str, str]]:
    c = nt.supervisors.c
    query = sa.select(c.supervisor_id, c.name, c.phone).where(c.agency_code == agency)
    async with n.engine.connect() as conn:
        return sorted((r.supervisor_id, r.name, r.phone) for r in await conn.execute(query))


async def names(n: NotifierHarness, *codes: str) -> dict[str, str]:
    async with n.engine.connect() as conn:
        return await notifier_repo.agency_names(conn, codes)


async def test_the_notifiers_copy_follows_the_directory(notifier: NotifierHarness) -> None:
    n, intake = notifier, notifier.intake
    await intake.agency("UBND-Q1", "Ủy ban nhân dân Quận 1")
    minh = await add(intake, MINH)
    thu = await add(intake, THU)
    await add(intake, {"name": "Ông Hải", "phone": "0912000333"}, agency="UBND-Q3")
    await n.feed()
    assert await notifier_supervisors(n, "UBND-Q1") == sorted(
        [(minh["id"], "Ông Minh", "+84903123456"), (thu["id"], "Bà Thu", "+84987000111")]
    )
    assert await names(n, "UBND-Q1", "UBND-Q3", "STNMT") == {
        "UBND-Q1": "Ủy ban nhân dân Quận 1",
        "UBND-Q3": "UBND-Q3",
    }
    assert await names(n) == {}

    url = "/agencies/UBND-Q1/supervisors"
    change = {"name": "Ông Lê Minh", "phone": "0912000999"}
    r = await intake.client.put(f"{url}/{minh['id']}", json=change, headers=intake.admin)
    assert r.status_code == 200, r.text
    await intake.agency("UBND-Q1", "UBND Quận 1")
    await n.feed()
    assert await notifier_supervisors(n, "UBND-Q1") == sorted(
        [(minh["id"], "Ông Lê Minh", "+84912000999"), (thu["id"], "Bà Thu", "+84987000111")]
    )
    assert await names(n, "UBND-Q1") == {"UBND-Q1": "UBND Quận 1"}

    for person in (minh, thu):
        r = await intake.client.delete(f"{url}/{person['id']}", headers=intake.admin)
        assert r.status_code == 204, r.text
    await n.feed()
    assert await notifier_supervisors(n, "UBND-Q1") == []
    assert len(await notifier_supervisors(n, "UBND-Q3")) == 1  # another agency's list stays
    assert await names(n, "UBND-Q1") == {"UBND-Q1": "UBND Quận 1"}


async def test_a_record_from_before_names_keeps_the_name_held(notifier: NotifierHarness) -> None:
    n, intake = notifier, notifier.intake
    await intake.agency("UBND-Q1", "Ủy ban nhân dân Quận 1")
    minh = await add(intake, MINH)
    await n.feed()
    old = {
        "event_id": "5a0c2c1e-9d3f-4a7b-8e21-000000000001",
        "type": "directory.supervisors_changed",
        "version": 1,
        "occurred_at": "2026-11-16T09:30:00+07:00",
        "payload": {
            "agency_code": "UBND-Q1",
            "supervisors": [{"id": minh["id"], "name": "Ông Minh", "phone": "+84903000000"}],
        },
    }
    await n.deliver("motcua.directory.v1", json.dumps(old).encode())
    assert await notifier_supervisors(n, "UBND-Q1") == [(minh["id"], "Ông Minh", "+84903000000")]
    assert await names(n, "UBND-Q1") == {"UBND-Q1": "Ủy ban nhân dân Quận 1"}


# -- the backfill (intake migration 0006) ----------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def intake_at_0005(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An intake database at the migration before the backfill, as a deployment has it."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/intake.db"
    else:
        url = fresh_postgres("backfill")
    run_aside(upgrade_async("intake", url, "0005"))
    return url


async def test_the_backfill_publishes_every_agencys_entry_once(intake_at_0005: str) -> None:
    created = datetime(2026, 3, 2, 8, 0, tzinfo=VN_TZ)
    engine = create_engine(intake_at_0005)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                t.agencies.insert(),
                [
                    {"code": code, "name": name, "office_schedule": {}, "created_at": created}
                    for code, name in [
                        ("UBND-Q1", "Ủy ban nhân dân Quận 1"),
                        ("STNMT", "Sở Tài nguyên và Môi trường"),
                    ]
                ],
            )
            # Registered before motcua.directory.v1 existed: no event in the outbox.
            await conn.execute(
                t.supervisors.insert(),
                [
                    {"id": "b-second", "agency_code": "UBND-Q1", "name": "Bà Thu",
                     "phone": "+84987000111", "email": "thu@example.vn",
                     "created_at": created.replace(hour=9)},
                    {"id": "a-first", "agency_code": "UBND-Q1", "name": "Ông Minh",
                     "phone": "+84903123456", "email": None, "created_at": created},
                ],
            )  # fmt: skip
        assert await directory_payloads(engine) == []

        await upgrade_async("intake", intake_at_0005)
        await engine.dispose()  # SQLite: the migration wrote through another connection

        payloads = await directory_payloads(engine)
        assert payloads == [
            {"agency_code": "STNMT", "agency_name": "Sở Tài nguyên và Môi trường",
             "supervisors": []},
            {"agency_code": "UBND-Q1", "agency_name": "Ủy ban nhân dân Quận 1",
             "supervisors": [
                 {"id": "a-first", "name": "Ông Minh", "phone": "+84903123456", "email": None},
                 {"id": "b-second", "name": "Bà Thu", "phone": "+84987000111",
                  "email": "thu@example.vn"},
             ]},
        ]  # fmt: skip
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.outbox))).all()
        assert all(r.published_at is None for r in rows)  # the relay publishes them
        assert len({r.event_id for r in rows}) == 2

        await upgrade_async("intake", intake_at_0005)  # at head: runs nothing again
        assert len(await directory_payloads(engine)) == 2
    finally:
        await engine.dispose()


async def test_supervisors_added_at_once_all_reach_the_last_entry(intake: IntakeHarness) -> None:
    """Writes to one agency's directory take turns: each event lists what the ones before it
    did, so the last one (all the notifier keeps) lists everybody."""
    await intake.agency("UBND-Q1", "UBND Quận 1")
    bodies = [{"name": f"Lãnh đạo {i}", "phone": f"090100000{i}"} for i in range(5)]
    answers = await asyncio.gather(
        *(
            intake.client.post("/agencies/UBND-Q1/supervisors", json=b, headers=intake.admin)
            for b in bodies
        )
    )
    assert [r.status_code for r in answers] == [201] * 5, [r.text for r in answers]
    *_, last = await directory_payloads(intake.service.engine)
    assert sorted(s["id"] for s in last["supervisors"]) == sorted(r.json()["id"] for r in answers)
